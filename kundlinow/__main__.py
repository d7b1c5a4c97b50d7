import sys

from kundlinow.cli import main

sys.exit(main())

"""The offline gazetteer and the time zone of typed coordinates."""

from __future__ import annotations

import pytest

from astrology.places import PlaceError, from_coordinates, gazetteer


def test_prefix_search_finds_indian_towns_most_populous_first() -> None:
    found = gazetteer().search("mum")
    assert found[0].name == "Mumbai, India"
    assert found[0].time_zone == "Asia/Kolkata"
    assert abs(found[0].latitude - 19.07) < 0.1


def test_old_names_and_accents_are_found() -> None:
    assert gazetteer().search("Bombay")[0].name == "Mumbai, India"
    assert gazetteer().search("kathm")[0].time_zone == "Asia/Kathmandu"
    assert gazetteer().search("Bengalūru")[0].name.startswith("Bengaluru")


def test_lookup_by_id_and_unknown_id() -> None:
    mumbai = gazetteer().search("Mumbai")[0]
    assert mumbai.id is not None
    assert gazetteer().get(mumbai.id) == mumbai
    with pytest.raises(PlaceError) as caught:
        gazetteer().get(-1)
    assert caught.value.code == "unknown_place"


def test_short_queries_return_nothing() -> None:
    assert gazetteer().search("m") == []


def test_typed_coordinates_get_their_time_zone() -> None:
    assert from_coordinates(27.7172, 85.3240).time_zone == "Asia/Kathmandu"
    assert from_coordinates(23.81, 90.41, "Dhaka").time_zone == "Asia/Dhaka"
    with pytest.raises(PlaceError) as caught:
        from_coordinates(91.0, 0.0)
    assert caught.value.code == "coordinates_out_of_range"


def test_own_names_rank_before_alternate_names() -> None:
    found = gazetteer().search("kath", 8)
    primary = [p.name.split(",")[0].casefold().startswith("kath") for p in found]
    assert primary == sorted(primary, reverse=True)  # every own-name match before any alias
    assert found[0].name == "Kathmandu, Nepal"

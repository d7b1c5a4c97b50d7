// Log in or create an account.
import { html, useState } from "/client/lib/html.js";
import { app, signIn } from "/client/session.js";
import { navigate, query } from "/client/router.js";
import { tell } from "/client/store.js";
import { errorSentence } from "/client/format.js";

function fields(form) { return Object.fromEntries(new FormData(form).entries()); }

export function Login() {
  const [busy, setBusy] = useState(false);
  const submit = (path) => async (event) => {
    event.preventDefault();
    setBusy(true);
    try {
      const reply = await app.api.post(path, fields(event.target));
      await signIn(reply.access_token);
      tell("");
      navigate(query().get("next") || "/app", { replace: true });
    } catch (error) {
      tell(errorSentence(error), "error");
      setBusy(false);
    }
  };
  return html`<div class="auth">
    <section class="hero">
      <h1>Talk to an astrologer now</h1>
      <p class="muted">Chat, voice or video. Pay by the minute from your wallet; unused balance stays yours.</p>
    </section>
    <div class="grid two">
      <form class="card stack" id="login" onSubmit=${submit("/auth/login")}>
        <h2>Log in</h2>
        <label>E-mail<input name="email" type="email" autocomplete="email" required /></label>
        <label>Password<input name="password" type="password" autocomplete="current-password" required /></label>
        <button disabled=${busy}>Log in</button>
      </form>
      <form class="card stack" id="register" onSubmit=${submit("/auth/register")}>
        <h2>New here?</h2>
        <label>Your name<input name="display_name" autocomplete="name" required maxlength="80" /></label>
        <label>E-mail<input name="email" type="email" autocomplete="email" required /></label>
        <label>Password (8 or more characters)<input name="password" type="password"
          autocomplete="new-password" minlength="8" required /></label>
        <label>I am
          <select name="role">
            <option value="user">looking for a consultation</option>
            <option value="consultant">an astrologer</option>
          </select></label>
        <button disabled=${busy}>Create account</button>
      </form>
    </div>
  </div>`;
}

// The astrologer edits what callers see: name, bio, languages, specialities, prices, photo.
import { html, useEffect, useState } from "/client/lib/html.js";
import { store, tell } from "/client/store.js";
import { app } from "/client/session.js";
import { errorSentence, rupees, toPaise } from "/client/format.js";
import { Loading } from "/client/views/shared/components.js";
import { Avatar } from "/client/views/caller/browse.js";

const list = (text) => text.split(",").map((t) => t.trim()).filter(Boolean);

export function Profile() {
  const [profile, setProfile] = useState(null);
  const [saving, setSaving] = useState(false);
  const me = store.state.me;
  useEffect(() => {
    app.api.get(`/consultants/${me.id}`).then(setProfile).catch((error) => tell(errorSentence(error), "error"));
  }, []);
  if (!profile) return html`<${Loading} />`;
  const save = async (event) => {
    event.preventDefault();
    const f = Object.fromEntries(new FormData(event.target).entries());
    const rates = {};
    for (const mode of ["chat", "voice", "video"]) {
      const paise = toPaise(f[`rate_${mode}`] || "0");
      if (paise === null) { tell(`The ${mode} price is not an amount in rupees.`, "error"); return; }
      rates[mode] = paise;
    }
    setSaving(true);
    try {
      setProfile(await app.api.patch("/consultants/me", { display_name: f.display_name.trim(), bio: f.bio,
        languages: list(f.languages), specialities: list(f.specialities), rates }));
      tell("Your profile is saved.");
    } catch (error) { tell(errorSentence(error), "error"); }
    setSaving(false);
  };
  const upload = async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    try {
      await app.api.upload("PUT", "/consultants/me/photo", file);
      setProfile(await app.api.get(`/consultants/${me.id}`));
      tell("Your photo is updated.");
    } catch (error) { tell(errorSentence(error), "error"); }
  };
  const price = (mode) => String(profile.rates[mode] / 100);
  return html`<section>
    <h1>Your profile</h1>
    <div class="card who-line">
      <${Avatar} astrologer=${{ ...profile, photo_url: profile.photo_url && `${profile.photo_url}?v=${Date.now()}` }} />
      <label class="grow">Photo (JPEG, PNG or WebP, up to 2 MB)
        <input type="file" id="photo" accept="image/jpeg,image/png,image/webp" onChange=${upload} /></label>
    </div>
    <form class="card stack" id="profile" onSubmit=${save}>
      <label>Name callers see<input name="display_name" value=${profile.display_name} required maxlength="80" /></label>
      <label>About you<textarea name="bio" rows="5" maxlength="2000">${profile.bio}</textarea></label>
      <label>Languages (comma separated)<input name="languages" value=${profile.languages.join(", ")} /></label>
      <label>Specialities (comma separated)<input name="specialities" value=${profile.specialities.join(", ")} /></label>
      <fieldset><legend>Price a minute (₹; 0 turns the mode off)</legend>
        <div class="grid three">
          ${["chat", "voice", "video"].map((mode) => html`<label>${mode[0].toUpperCase() + mode.slice(1)}
            <span class="rupee-input"><span aria-hidden="true">₹</span>
              <input name=${`rate_${mode}`} inputmode="decimal" value=${price(mode)} /></span></label>`)}
        </div>
        <p class="muted small">Now: ${profile.modes.map((m) => `${m} ${rupees(profile.rates[m])}`).join(" · ") || "no mode offered"}</p>
      </fieldset>
      <button disabled=${saving}>Save profile</button>
    </form>
  </section>`;
}

// What people read: rupees (never paise), role words, and one sentence per end reason and error.

export function rupees(paise) {
  if (paise === null || paise === undefined) return "—";
  const whole = paise % 100 === 0;
  return "₹" + (paise / 100).toLocaleString("en-IN",
    { minimumFractionDigits: whole ? 0 : 2, maximumFractionDigits: 2 });
}

// "12.50" or "12" typed in a rupee box → paise (an integer), or null when it is not an amount.
export function toPaise(text) {
  const value = String(text).trim().replace(/^₹/, "").replace(/,/g, "");
  if (!/^\d+(\.\d{1,2})?$/.test(value)) return null;
  const [whole, fraction = ""] = value.split(".");
  return Number(whole) * 100 + Number((fraction + "00").slice(0, 2));
}

export const ROLE_WORD = { user: "Caller", consultant: "Astrologer", admin: "Admin" };
export const MODE_WORD = { chat: "Chat", voice: "Voice call", video: "Video call" };
export const STATUS_WORD = { online: "Online", busy: "In a consultation", away: "Away", offline: "Offline" };

// Why a consultation ended, told to each side. The astrologer is never asked to recharge.
const ENDINGS = {
  completed: { user: "The consultation has ended.", consultant: "The consultation has ended." },
  cancelled: { user: "You cancelled the request.", consultant: "The caller cancelled the request." },
  rejected: { user: "The astrologer could not take your request. You were not charged.",
              consultant: "You declined this request." },
  timeout: { user: "The astrologer did not answer in time. You were not charged.",
             consultant: "The request expired before you accepted it." },
  insufficient_balance: {
    user: "Your wallet ran out, so the consultation ended. Recharge to talk again.",
    consultant: "The caller's balance ran out, so the consultation ended. Your minutes are paid.",
  },
  disconnected: { user: "The connection was lost and did not come back, so the consultation ended.",
                  consultant: "The connection was lost and did not come back, so the consultation ended." },
  admin: { user: "Our support team ended this consultation.",
           consultant: "Our support team ended this consultation." },
};

export function endSentence(reason, role) {
  const side = role === "consultant" ? "consultant" : "user";
  return (ENDINGS[reason] || ENDINGS.completed)[side];
}

export function endWord(reason) {
  return { completed: "Completed", cancelled: "Cancelled", rejected: "Declined", timeout: "Not answered",
           insufficient_balance: "Balance ran out", disconnected: "Connection lost",
           admin: "Ended by support" }[reason] || "Ended";
}

const ERRORS = {
  INVALID_CREDENTIALS: "That e-mail and password do not match an account.",
  ACCOUNT_DISABLED: "This account has been disabled. Please contact support.",
  EMAIL_TAKEN: "An account with this e-mail already exists. Log in instead.",
  RATE_LIMITED: "Too many attempts. Please wait a minute and try again.",
  CONSULTANT_OFFLINE: "This astrologer has just gone offline.",
  CONSULTANT_UNAVAILABLE: "This astrologer is busy right now.",
  ALREADY_LIVE: "You already have a consultation going on.",
  CONSULT_NOT_ACTIVE: "This consultation is not live any more.",
  NOT_JOINED: "You are not in this consultation any more.",
  FORBIDDEN: "You are not allowed to do that.",
  NOT_FOUND: "We could not find that.",
  INSUFFICIENT_EARNINGS: "Your available earnings are less than that amount.",
  PAYOUT_PENDING: "You already have a payout request waiting.",
  VALIDATION_FAILED: "Please check the form: something is not valid.",
  MEDIA_UNAVAILABLE: "The call could not be connected. Please try again.",
};

export function errorSentence(error) {
  if (!error) return "";
  if (error.code === "INSUFFICIENT_BALANCE") {
    const needed = error.details && error.details.needed_paise;
    return needed ? `Add at least ${rupees(needed)} to your wallet to start.`
      : "Your wallet balance is too low. Please recharge.";
  }
  if (error.code === "INVALID_AMOUNT" && error.details && error.details.minimum_paise) {
    return `The minimum is ${rupees(error.details.minimum_paise)}.`;
  }
  return ERRORS[error.code] || error.message || "Something went wrong. Please try again.";
}

export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString("en-IN", { dateStyle: "medium", timeStyle: "short" });
}

export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// "consultation_force_ended" -> "Consultation force ended" (audit actions, session log kinds).
export const words = (text) => text.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());

// Key/value details (audit entries, session log data) as words; amounts in paise as rupees.
export function describe(data) {
  return Object.entries(data || {}).map(([key, value]) => {
    const money = key.endsWith("_paise") && typeof value === "number";
    const label = words(key.replace(/_paise$/, ""));
    const shown = money ? rupees(value) : typeof value === "object" ? JSON.stringify(value) : String(value);
    return `${label}: ${shown}`;
  }).join(" · ");
}

"""The identity provider's HTML pages: sign in, consent, sign out, errors.

Self-contained (one inline stylesheet, no script, nothing from a CDN) and usable
without JavaScript. Every value is HTML-escaped; every response forbids framing
(clickjacking on a consent button) and caching, and its Content-Security-Policy only
admits the stylesheet below by its hash.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from tokenginx.idp.accounts import LoginFailed
from tokenginx.idp.browser import CSRF_COOKIE, BrowserSessions, Csrf, Login

_CSS = """
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
background:linear-gradient(135deg,#1e3a8a 0%,#2563eb 55%,#38bdf8 100%);color:#0f172a}
main{width:100%;max-width:400px;margin:24px;background:#fff;border-radius:14px;
box-shadow:0 20px 45px rgba(15,23,42,.35);padding:32px 32px 28px}
.brand{display:flex;align-items:center;gap:10px;margin-bottom:18px;color:#1e3a8a;
font-weight:700;letter-spacing:.02em}
.logo{width:34px;height:34px;border-radius:9px;background:#2563eb;color:#fff;display:flex;
align-items:center;justify-content:center;font-size:18px}
h1{font-size:1.4rem;margin:0 0 6px}
p{margin:0 0 16px;color:#334155}
label{display:block;font-weight:600;margin:14px 0 6px;font-size:.92rem}
input[type=text],input[type=password]{width:100%;padding:11px 12px;border:1px solid #cbd5e1;
border-radius:8px;font-size:1rem;background:#f8fafc}
input:focus{outline:2px solid #60a5fa;border-color:#2563eb;background:#fff}
.actions{display:flex;gap:10px;margin-top:22px}
button{flex:1;padding:11px 14px;border-radius:8px;border:0;font-size:1rem;font-weight:600;
cursor:pointer;background:#2563eb;color:#fff}
button:hover{background:#1d4ed8}
button.secondary{background:#e2e8f0;color:#0f172a}
button.secondary:hover{background:#cbd5e1}
.error{background:#fef2f2;border:1px solid #fecaca;color:#b91c1c;border-radius:8px;
padding:10px 12px;margin:0 0 14px}
ul.scopes{margin:0 0 8px;padding:0;list-style:none}
ul.scopes li{padding:9px 12px;margin:6px 0;border-radius:8px;background:#eff6ff;
border-left:4px solid #2563eb}
.muted{color:#64748b;font-size:.85rem;margin-top:18px}
"""
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src 'self' data:; "
    "base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}

# What each OIDC scope lets the application see, in words a user can judge.
SCOPE_TEXT = {
    "openid": "Confirm your identity (your user identifier)",
    "profile": "Read your profile: name and nickname",
    "email": "Read your e-mail address",
    "phone": "Read your phone number",
    "offline_access": "Stay connected when you are not using it",
}


def _page(title: str, body: str, status: int = 200, csrf: Csrf | None = None,
          secure: bool = False) -> HTMLResponse:
    html = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)} · TokenginX</title><style>{_CSS}</style></head><body><main>"
        '<div class="brand"><span class="logo">T</span><span>TokenginX</span></div>'
        f"{body}</main></body></html>"
    )
    response = HTMLResponse(html, status_code=status, headers=HEADERS)
    if csrf is not None:
        # Signed double submit: the form's token is a MAC of this cookie's nonce
        # (BrowserSessions.check_csrf).
        response.set_cookie(CSRF_COOKIE, csrf.cookie, path="/", httponly=True, samesite="lax",
                            secure=secure)
    return response


def _hidden(fields: Mapping[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">'
        for k, v in fields.items()
    )


def login_page(*, action: str, hidden: dict[str, str], csrf: Csrf, error: str | None = None,
               username: str = "", status: int = 200, secure: bool = False,
               heading: str = "Sign in", client_name: str | None = None) -> HTMLResponse:
    """The sign-in form: POSTs ``username``, ``password``, ``csrf`` and ``hidden``."""
    err = f'<div class="error" role="alert">{escape(error)}</div>' if error else ""
    lead = (f"to continue to <strong>{escape(client_name)}</strong>" if client_name
            else "Use your TokenginX account.")
    body = (
        f"<h1>{escape(heading)}</h1><p>{lead}</p>{err}"
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf.field)}">{_hidden(hidden)}'
        '<label for="username">Username</label>'
        f'<input type="text" id="username" name="username" value="{escape(username)}" '
        'autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" '
        'autocomplete="current-password" required>'
        '<div class="actions"><button type="submit">Sign in</button></div></form>'
    )
    return _page(heading, body, status, csrf, secure)


def consent_page(*, action: str, hidden: dict[str, str], csrf: Csrf, client_name: str,
                 scopes: Iterable[str], username: str, secure: bool = False) -> HTMLResponse:
    """Allow/Deny for ``client_name`` asking for ``scopes``; POSTs ``decision``."""
    items = "".join(f"<li>{escape(SCOPE_TEXT.get(s, s))}</li>" for s in scopes)
    body = (
        f"<h1>Allow access?</h1><p><strong>{escape(client_name)}</strong> wants to:</p>"
        f'<ul class="scopes">{items or "<li>Sign you in</li>"}</ul>'
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf.field)}">{_hidden(hidden)}'
        '<div class="actions">'
        '<button type="submit" name="decision" value="deny" class="secondary">Deny</button>'
        '<button type="submit" name="decision" value="allow">Allow</button></div></form>'
        f'<p class="muted">Signed in as {escape(username)}.</p>'
    )
    return _page("Allow access", body, 200, csrf, secure)


def logout_confirm_page(*, action: str, hidden: dict[str, str], csrf: Csrf, username: str,
                        secure: bool = False) -> HTMLResponse:
    """Asked when a sign-out request does not prove it comes from the user's application."""
    body = (
        f"<h1>Sign out?</h1><p>You are signed in as <strong>{escape(username)}</strong>. "
        "Signing out ends your session with every application that uses it.</p>"
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf.field)}">{_hidden(hidden)}'
        '<div class="actions"><button type="submit" name="decision" value="stay" '
        'class="secondary">Stay signed in</button>'
        '<button type="submit" name="decision" value="logout">Sign out</button></div></form>'
    )
    return _page("Sign out", body, 200, csrf, secure)


def logged_out_page() -> HTMLResponse:
    body = "<h1>Signed out</h1><p>You have been signed out. You can close this window.</p>"
    return _page("Signed out", body)


def info_page(title: str, message: str) -> HTMLResponse:
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")


def error_page(title: str, message: str, status: int = 400) -> HTMLResponse:
    """A request we will not send back to its application (RFC 6749 §4.1.2.1)."""
    body = f'<h1>{escape(title)}</h1><div class="error" role="alert">{escape(message)}</div>'
    return _page(title, body, status)


BAD_FORM = ("This form has expired or was not sent by this site. "
            "Go back to the application and try again.")


def login_failure(e: LoginFailed) -> tuple[str, int, dict[str, str]]:
    """What a sign-in page shows after a failed sign-in: the message, the status and
    headers. Unknown users and wrong passwords read the same (no account probing)."""
    if e.retry_after:
        minutes = max(1, -(-e.retry_after // 60))
        message = (f"Too many failed sign-in attempts. Try again in {minutes} "
                   f"minute{'s' if minutes != 1 else ''}.")
        return message, 429, {"Retry-After": str(e.retry_after)}
    return "Invalid username or password.", 401, {}


ShowForm = Callable[[str, str, int], Response]  # (error, username, status) -> the form again


async def sign_in_from_form(sessions: BrowserSessions, request: Request,
                            form: Mapping[str, object], show_form: ShowForm) -> Login | Response:
    """The POST of a sign-in page (OAuth or CAS), after its CSRF check: both fields
    present, the password check. Returns the new :class:`Login`, or the form again with
    the reason to send instead."""
    username, password = _field(form, "username") or "", _field(form, "password") or ""
    if not username or not password:
        return show_form("Enter your username and password.", username[:256], 400)
    try:
        return await sessions.sign_in(request, username, password)
    except LoginFailed as e:
        message, status, headers = login_failure(e)
        response = show_form(message, username[:256], status)
        response.headers.update(headers)
        return response


def _field(form: Mapping[str, object], name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None

//! The signer-facing authorization page: server-rendered HTML (maud escapes every value), no
//! scripts, no external assets, a strict Content-Security-Policy, usable with a keyboard alone
//! (native form controls in reading order, labels bound to inputs, the first field focused, a
//! visible focus ring, Enter submits). English and Bulgarian, from `lang` or Accept-Language.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::service::oauth::{Page, Step};

/// One language's strings.
pub struct Texts {
    pub code: &'static str,
    title: &'static str,
    intro_service: &'static str,
    intro_credential: &'static str,
    documents: &'static str,
    credential: &'static str,
    username: &'static str,
    password: &'static str,
    pin: &'static str,
    otp: &'static str,
    otp_sent: &'static str,
    otp_after_login: &'static str,
    continue_login: &'static str,
    approve_sign: &'static str,
    approve_login: &'static str,
    cancel: &'static str,
    wrong_pin_otp: &'static str,
    wrong_password: &'static str,
    missing: &'static str,
    error_title: &'static str,
}

const EN: Texts = Texts {
    code: "en",
    title: "Authorize with Quill",
    intro_service: "wants to use your signing account.",
    intro_credential: "asks you to sign:",
    documents: "Documents to sign",
    credential: "Signing key",
    username: "User name",
    password: "Password",
    pin: "Signing PIN",
    otp: "One-time code",
    otp_sent: "A one-time code was sent to you.",
    otp_after_login: "After you sign in, a one-time code will be sent to you.",
    continue_login: "Continue",
    approve_sign: "Sign",
    approve_login: "Sign in",
    cancel: "Cancel",
    wrong_pin_otp: "The PIN or the one-time code is wrong. Attempts are limited.",
    wrong_password: "The user name or password is wrong. Attempts are limited.",
    missing: "Please fill in every field.",
    error_title: "This request cannot be completed",
};

const BG: Texts = Texts {
    code: "bg",
    title: "Упълномощаване с Quill",
    intro_service: "иска достъп до вашия профил за подписване.",
    intro_credential: "ви моли да подпишете:",
    documents: "Документи за подписване",
    credential: "Ключ за подписване",
    username: "Потребителско име",
    password: "Парола",
    pin: "ПИН за подписване",
    otp: "Еднократен код",
    otp_sent: "Изпратихме ви еднократен код.",
    otp_after_login: "След като влезете, ще ви изпратим еднократен код.",
    continue_login: "Продължи",
    approve_sign: "Подпиши",
    approve_login: "Вход",
    cancel: "Отказ",
    wrong_pin_otp: "Грешен ПИН или еднократен код. Опитите са ограничени.",
    wrong_password: "Грешно потребителско име или парола. Опитите са ограничени.",
    missing: "Моля, попълнете всички полета.",
    error_title: "Заявката не може да бъде изпълнена",
};

/// The language: an explicit `lang` first, else the first supported one in Accept-Language.
pub fn texts(lang: Option<&str>, accept_language: Option<&str>) -> &'static Texts {
    let pick = |tag: &str| {
        let primary = tag.trim().split(['-', '_', ';']).next().unwrap_or("");
        match primary.to_ascii_lowercase().as_str() {
            "bg" => Some(&BG),
            "en" => Some(&EN),
            _ => None,
        }
    };
    lang.and_then(pick)
        .or_else(|| accept_language.and_then(|a| a.split(',').find_map(pick)))
        .unwrap_or(&EN)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;\
padding:0 1rem;color:#111;background:#fff;line-height:1.5}\
h1{font-size:1.4rem}label{display:block;margin-top:1rem;font-weight:600}\
input{font-size:1.1rem;padding:.4rem;width:100%;box-sizing:border-box;border:1px solid #555}\
button{font-size:1.05rem;margin-top:1.2rem;margin-right:.6rem;padding:.5rem 1.2rem}\
:focus{outline:3px solid #1a5fb4;outline-offset:2px}\
.error{color:#a00;border-left:4px solid #a00;padding-left:.6rem}\
code{word-break:break-all}";

fn layout(t: &Texts, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(t.code) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
}

/// The Content-Security-Policy of these pages: nothing but our own form and inline style. The
/// form may lead to the client's redirect URI (browsers apply `form-action` to the redirect that
/// follows a form submission), so its origin is allowed too.
pub fn csp(redirect_uri: Option<&str>) -> String {
    let target = redirect_uri
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'{target}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// The page asking for the user name and password (service), and with them the PIN and OTP
/// (credential); an online-OTP credential asks for the password first and then, once its code
/// has been sent, for the PIN and code.
pub fn render(page: &Page, t: &Texts) -> String {
    let p = &page.params;
    let error = page.error.map(|e| match e {
        "wrong_pin_otp" => t.wrong_pin_otp,
        "wrong_password" => t.wrong_password,
        _ => t.missing,
    });
    let body = html! {
        h1 { (t.title) }
        p { strong { (page.client_name) } " " (if p.is_credential() { t.intro_credential } else { t.intro_service }) }
        @if let Some(d) = &p.description { p { (d) } }
        @if let Some(msg) = error { p.error role="alert" { (msg) } }
        @if let Some(cred) = &page.credential {
            h2 { (t.documents) ": " (p.digests.len()) }
            ul {
                @for (i, digest) in p.digests.iter().enumerate() {
                    li {
                        @match p.labels.get(i).filter(|l| !l.is_empty()) {
                            Some(label) => { (label) }
                            None => { code { (digest) } }
                        }
                    }
                }
            }
            @if let Some(name) = &cred.name { p { (t.credential) ": " (name) } }
            @match (cred.step, cred.sends_code) {
                (Step::Login, true) => { p { (t.otp_after_login) } }
                (Step::Codes, true) => { p { (t.otp_sent) } }
                _ => {}
            }
        }
        form method="post" action="/oauth2/authorize" {
            input type="hidden" name="handle" value=(page.handle.expose());
            input type="hidden" name="csrf" value=(page.csrf.expose());
            @let step = page.credential.as_ref().map(|c| c.step);
            @if step != Some(Step::Codes) {
                label for="username" { (t.username) }
                input id="username" name="username" type="text" autocomplete="username" required autofocus;
                label for="password" { (t.password) }
                input id="password" name="password" type="password" autocomplete="current-password" required;
            }
            @if matches!(step, Some(Step::All | Step::Codes)) {
                label for="pin" { (t.pin) }
                input id="pin" name="pin" type="password" inputmode="numeric" autocomplete="off" required autofocus[step == Some(Step::Codes)];
                label for="otp" { (t.otp) }
                input id="otp" name="otp" type="text" inputmode="numeric" autocomplete="one-time-code" required;
            }
            @match step {
                None => { button type="submit" name="action" value="approve" { (t.approve_login) } }
                Some(Step::Login) => { button type="submit" name="action" value="approve" { (t.continue_login) } }
                Some(_) => { button type="submit" name="action" value="approve" { (t.approve_sign) } }
            }
            button type="submit" name="action" value="cancel" formnovalidate { (t.cancel) }
        }
    };
    layout(t, t.title, body).into_string()
}

/// An error shown to the user (never redirected: the client or its redirect URI is not trusted).
pub fn render_error(t: &Texts, description: &str) -> String {
    layout(
        t,
        t.error_title,
        html! {
            h1 { (t.error_title) }
            p.error role="alert" { (description) }
        },
    )
    .into_string()
}

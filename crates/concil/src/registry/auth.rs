//! Auth challenges (`WWW-Authenticate`), bearer tokens and the `Authorization` header values.

use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use url::Url;

use crate::config::Credentials;

/// How long a token lives when the token service does not say (the token spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// The longest a token is used, whatever the token service says: a lifetime is outside
/// input (`expires_in` may be any number up to 2^64-1), and an hour covers any pull.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// A token this close to its expiry is not used any more: a request that starts now must not
/// arrive with a token that just expired.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// An `Authorization` header value. `Debug` hides it, so it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct AuthHeader(String);

impl AuthHeader {
    pub(super) fn basic(credentials: &Credentials) -> AuthHeader {
        let pair = format!("{}:{}", credentials.username, credentials.password);
        AuthHeader(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    pub(super) fn bearer(token: &str) -> AuthHeader {
        AuthHeader(format!("Bearer {token}"))
    }

    pub(super) fn value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AuthHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthHeader(<redacted>)")
    }
}

/// What the registry asks for, from the `WWW-Authenticate` header of a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `GET /v2/` answered 200: no auth.
    None,
    /// `Basic realm=…`: send the credentials with every request.
    Basic,
    /// `Bearer realm=…,service=…`: get a token from `realm`.
    Bearer { realm: Url, service: Option<String> },
}

/// The first challenge among `headers` (each one `WWW-Authenticate` value) that we can
/// answer. `Err` names what was wrong with a Bearer challenge we could not use.
pub(crate) fn parse_challenges<'a>(
    headers: impl Iterator<Item = &'a str>,
) -> Result<Option<Challenge>, String> {
    for header in headers {
        let (scheme, params) = split_challenge(header);
        if scheme.eq_ignore_ascii_case("basic") {
            return Ok(Some(Challenge::Basic));
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            };
            let realm = param("realm").ok_or("Bearer challenge without realm")?;
            let realm = Url::parse(realm)
                .map_err(|e| format!("Bearer challenge realm {realm:?} is not a URL: {e}"))?;
            if !matches!(realm.scheme(), "http" | "https") {
                return Err(format!("Bearer challenge realm {realm} is not http(s)"));
            }
            let service = param("service").cloned();
            return Ok(Some(Challenge::Bearer { realm, service }));
        }
    }
    Ok(None)
}

/// Splits `Scheme k1="v1", k2=v2` into the scheme and its parameters (RFC 9110 auth-param:
/// token or quoted-string values, backslash escapes in quoted strings).
fn split_challenge(header: &str) -> (&str, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, mut rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        let Some((key, after_key)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().to_owned();
        let after_key = after_key.trim_start();
        let (value, after_value) = if let Some(quoted) = after_key.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    _ => value.push(c),
                }
            }
            (value, quoted.get(end..).unwrap_or(""))
        } else {
            let end = after_key.find(',').unwrap_or(after_key.len());
            let (value, after) = after_key.split_at(end);
            (value.trim().to_owned(), after)
        };
        params.push((key, value));
        rest = after_value;
    }
    (scheme, params)
}

/// A bearer token and when it stops being usable.
pub(super) struct CachedToken {
    pub(super) token: String,
    usable_until: Instant,
}

impl CachedToken {
    pub(super) fn new(token: String, expires_in: Option<u64>, received: Instant) -> CachedToken {
        let lifetime = expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs)
            .min(MAX_TOKEN_LIFETIME);
        let usable = lifetime.saturating_sub(TOKEN_EXPIRY_MARGIN);
        // `Instant + Duration` panics on overflow; the cap makes it fit, this keeps it so.
        let usable_until = received.checked_add(usable).unwrap_or(received);
        CachedToken {
            token,
            usable_until,
        }
    }

    pub(super) fn is_fresh(&self, now: Instant) -> bool {
        now < self.usable_until
    }
}

/// The token service's answer (Docker's token spec; OAuth2 services say `access_token`).
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and its lifetime in seconds, or why the response is unusable.
    pub(crate) fn into_token(self) -> Result<(String, Option<u64>), &'static str> {
        let token = [self.token, self.access_token]
            .into_iter()
            .flatten()
            .find(|t| !t.is_empty())
            .ok_or("neither \"token\" nor \"access_token\" in the token response")?;
        // It goes into a header: refuse what would break or smuggle one.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token holds characters not allowed in a header");
        }
        Ok((token, self.expires_in))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_with_quoted_commas() {
        let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#;
        let challenge = parse_challenges([header].into_iter()).unwrap();
        assert_eq!(
            challenge,
            Some(Challenge::Bearer {
                realm: Url::parse("https://auth.docker.io/token").unwrap(),
                service: Some("registry.docker.io".into()),
            })
        );
    }

    #[test]
    fn basic_and_unknown_schemes() {
        let headers = ["Negotiate abc", r#"Basic realm="x""#];
        assert_eq!(
            parse_challenges(headers.into_iter()).unwrap(),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenges(["Digest realm=x"].into_iter()).unwrap(),
            None
        );
    }

    #[test]
    fn bearer_without_realm_is_an_error() {
        assert!(parse_challenges([r#"Bearer service="x""#].into_iter()).is_err());
        assert!(parse_challenges([r#"Bearer realm="file:///etc/passwd""#].into_iter()).is_err());
    }

    #[test]
    fn escaped_quotes_and_tokens() {
        let (scheme, params) = split_challenge(r#"bearer realm="a\"b", service=svc ,x="""#);
        assert_eq!(scheme, "bearer");
        assert_eq!(
            params,
            vec![
                ("realm".to_owned(), "a\"b".to_owned()),
                ("service".to_owned(), "svc".to_owned()),
                ("x".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn token_lifetime_and_fields() {
        let now = Instant::now();
        let token = CachedToken::new("t".into(), None, now);
        assert!(token.is_fresh(now + Duration::from_secs(54)));
        assert!(!token.is_fresh(now + Duration::from_secs(55)));
        let response: TokenResponse =
            serde_json::from_str(r#"{"access_token":"abc","expires_in":300}"#).unwrap();
        assert_eq!(response.into_token(), Ok(("abc".to_owned(), Some(300))));
        let endless = CachedToken::new("t".into(), Some(u64::MAX), now);
        assert!(endless.is_fresh(now + MAX_TOKEN_LIFETIME - Duration::from_secs(6)));
        assert!(!endless.is_fresh(now + MAX_TOKEN_LIFETIME));
        let response: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(response.into_token().is_err());
        let response: TokenResponse = serde_json::from_str(r#"{"token":"a\r\nb"}"#).unwrap();
        assert!(response.into_token().is_err());
    }

    #[test]
    fn auth_header_debug_hides_the_secret() {
        let credentials = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        let header = AuthHeader::basic(&credentials);
        assert_eq!(header.value(), "Basic dTpodW50ZXIy");
        assert!(!format!("{header:?}").contains("dTpodW50ZXIy"));
    }
}

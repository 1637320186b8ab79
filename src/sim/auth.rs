//! API key checks, as Alpaca's gateway answers them.
//!
//! - Missing `APCA-API-KEY-ID` or `APCA-API-SECRET-KEY` (e.g. sent with underscores, which
//!   proxies drop): 403 `{"message":"forbidden."}` with no code, as Alpaca's gateway does.
//! - Present but empty, or not the pinned pair: 401
//!   `{"code":40110000,"message":"access key verification failed"}` from the trading API; the
//!   market-data API answers every bad credential 403 `{"message":"forbidden"}`, no code.
//! - `Authorization: Bearer <token>` (OAuth) is accepted when no pair is pinned.
//!
//! Invariant: the account a request acts on is named by the key id alone (see `exchange`).

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use serde_json::{Value, json};

pub const KEY_HEADER: &str = "APCA-API-KEY-ID";
pub const SECRET_HEADER: &str = "APCA-API-SECRET-KEY";

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Credentials absent: 403.
    Missing,
    /// Credentials present but not accepted: 401.
    Invalid,
}

impl AuthError {
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing => 403,
            AuthError::Invalid => 401,
        }
    }

    pub fn body(&self) -> Value {
        match self {
            AuthError::Missing => json!({"message": "forbidden."}),
            AuthError::Invalid => {
                json!({"code": 40110000, "message": "access key verification failed"})
            }
        }
    }

    /// Status and body as the API answers them: the market-data API refuses every bad
    /// credential with a bare 403 and no code, where the trading API answers 401 with one.
    pub fn answer(&self, data_api: bool) -> (u16, Value) {
        if data_api {
            (403, json!({"message": "forbidden"}))
        } else {
            (self.status(), self.body())
        }
    }
}

/// The pinned key pair, if any.
#[derive(Debug, Clone, Default)]
pub struct Pinned(pub Option<(String, String)>);

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The key a request is counted against for rate limiting (before it is verified), so that
/// even refused requests carry rate-limit headers.
pub fn claimed_key(headers: &HeaderMap) -> String {
    if let Some(k) = header(headers, KEY_HEADER) {
        return k.to_string();
    }
    bearer(headers)
        .map(|t| format!("oauth:{t}"))
        .unwrap_or_default()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    header(headers, AUTHORIZATION.as_str())?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Checks the credentials; returns the key id (the account) on success.
pub fn check(headers: &HeaderMap, pinned: &Pinned) -> Result<String, AuthError> {
    let key = header(headers, KEY_HEADER);
    let secret = header(headers, SECRET_HEADER);
    match (key, secret) {
        (Some(k), Some(s)) => {
            if k.is_empty() || s.is_empty() {
                return Err(AuthError::Invalid);
            }
            match &pinned.0 {
                Some((pk, ps)) if pk != k || ps != s => Err(AuthError::Invalid),
                _ => Ok(k.to_string()),
            }
        }
        (None, None) => match (bearer(headers), &pinned.0) {
            (Some(token), None) => Ok(format!("oauth:{token}")),
            (Some(_), Some(_)) => Err(AuthError::Invalid),
            (None, _) => Err(AuthError::Missing),
        },
        _ => Err(AuthError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn any_non_empty_pair_is_accepted_by_default() {
        let h = headers(&[(KEY_HEADER, "k"), (SECRET_HEADER, "s")]);
        assert_eq!(check(&h, &Pinned::default()), Ok("k".to_string()));
    }

    #[test]
    fn missing_headers_are_forbidden_and_wrong_ones_unauthorized() {
        assert_eq!(
            check(&headers(&[(KEY_HEADER, "k")]), &Pinned::default()),
            Err(AuthError::Missing)
        );
        assert_eq!(
            check(&headers(&[]), &Pinned::default()),
            Err(AuthError::Missing)
        );
        assert_eq!(
            check(
                &headers(&[(KEY_HEADER, ""), (SECRET_HEADER, "s")]),
                &Pinned::default()
            ),
            Err(AuthError::Invalid)
        );
        let pinned = Pinned(Some(("k".into(), "s".into())));
        assert_eq!(
            check(
                &headers(&[(KEY_HEADER, "k"), (SECRET_HEADER, "x")]),
                &pinned
            ),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            check(
                &headers(&[(KEY_HEADER, "k"), (SECRET_HEADER, "s")]),
                &pinned
            ),
            Ok("k".to_string())
        );
    }

    #[test]
    fn bearer_tokens_work_unless_a_pair_is_pinned() {
        let h = headers(&[("authorization", "Bearer tok")]);
        assert_eq!(check(&h, &Pinned::default()), Ok("oauth:tok".to_string()));
        let pinned = Pinned(Some(("k".into(), "s".into())));
        assert_eq!(check(&h, &pinned), Err(AuthError::Invalid));
    }
}

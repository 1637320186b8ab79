//! Helpers shared by the simulator's integration tests: start a simulator on 127.0.0.1:0 and
//! talk to it over real HTTP.
#![allow(dead_code)]
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use herd::sim::{SimConfig, SimServer};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A frozen-clock config starting on a Wednesday afternoon: tests move time with
/// `POST /__sim/clock` instead of sleeping.
pub fn frozen() -> SimConfig {
    SimConfig {
        speed: 0.0,
        start: Some("2024-05-08T15:17:00Z".into()),
        rate_limit: 0,
        ..SimConfig::default()
    }
}

pub async fn start(cfg: SimConfig) -> SimServer {
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    SimServer::start(cfg, addr).await.expect("simulator starts")
}

/// A response: status, headers, and the body as JSON (Null when empty or not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub key: Option<(String, String)>,
}

impl Client {
    pub fn new(server: &SimServer) -> Self {
        Self::with_key(server, "test-key", "test-secret")
    }

    pub fn with_key(server: &SimServer, key: &str, secret: &str) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: server.base_url(),
            key: Some((key.into(), secret.into())),
        }
    }

    pub fn anonymous(server: &SimServer) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: server.base_url(),
            key: None,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some((k, s)) = &self.key {
            req = req
                .header("APCA-API-KEY-ID", k)
                .header("APCA-API-SECRET-KEY", s);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Moves the frozen sim clock forward ("5s", "2h").
    pub async fn advance(&self, by: &str) -> Reply {
        let r = self
            .post("/__sim/clock", serde_json::json!({ "advance": by }))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r
    }
}

//! The OpenAPI document against the real server: it is valid OpenAPI 3.1, and every route it
//! lists answers, live, with bodies its schemas accept (checked by `tests/openapi/check.py`
//! with the Python validators `./scripts/test` installs). A route documented but never
//! exercised here fails the test, so the document and this check grow together.
// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{ADMIN_TOKEN, Herd, ONE_QUIET_INSTANCE, eventually};
use serde_json::{Value, json};

/// Real answers, each as {method, path template, status, body}.
struct Samples {
    base: String,
    taken: Vec<Value>,
}

impl Samples {
    /// Calls `method url` and keeps the answer under `template`.
    async fn take(
        &mut self,
        method: &str,
        template: &str,
        url: &str,
        body: Option<Value>,
    ) -> Value {
        let client = reqwest::Client::new();
        let mut request = match method {
            "get" => client.get(format!("{}{url}", self.base)),
            _ => client.post(format!("{}{url}", self.base)),
        };
        if template.starts_with("/admin")
            || ["/execute", "/cache/clear", "/live/reset-circuit-breaker"].contains(&template)
        {
            request = request.header("X-Admin-Token", ADMIN_TOKEN);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        self.taken
            .push(json!({"method": method, "path": template, "status": status, "body": body}));
        body
    }
}

fn python() -> String {
    std::env::var("HERD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_route_answers_what_the_document_says() {
    let mut herd = Herd::start(ONE_QUIET_INSTANCE, &[("HERD_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let base = herd.http.clone();
    let doc: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    eventually("ready", &herd, || async {
        let r = reqwest::get(format!("{base}/readyz")).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    // The first tick has read the account: /positions can answer.
    eventually("a tick", &herd, || async {
        let body = common::get_json(&format!("{base}/strategies/mom")).await?;
        (body["ticks"].as_u64()? >= 1).then_some(())
    })
    .await;

    let mut s = Samples {
        base: base.clone(),
        taken: Vec::new(),
    };
    for (template, url) in [
        ("/livez", "/livez"),
        ("/live", "/live"),
        ("/readyz", "/readyz"),
        ("/ready", "/ready"),
        ("/health", "/health"),
        ("/strategies", "/strategies"),
        ("/strategies/{id}", "/strategies/mom"),
        ("/strategies/{id}", "/strategies/nobody"),
        ("/orders", "/orders?limit=5"),
        ("/orders", "/orders?limit=0"),
        ("/positions", "/positions"),
        ("/cache/stats", "/cache/stats"),
    ] {
        s.take("get", template, url, None).await;
    }
    let reason = Some(json!({"reason": "openapi check"}));
    for (template, url, body) in [
        (
            "/admin/trading/{state}",
            "/admin/trading/halt",
            reason.clone(),
        ),
        ("/health", "/health", None),
        (
            "/admin/trading/{state}",
            "/admin/trading/resume",
            reason.clone(),
        ),
        ("/admin/trading/{state}", "/admin/trading/halt", None),
        (
            "/admin/breakers/{operation}/{command}",
            "/admin/breakers/bars/open",
            None,
        ),
        (
            "/admin/breakers/{operation}/{command}",
            "/admin/breakers/nothing/open",
            None,
        ),
        ("/admin/breakers/reset", "/admin/breakers/reset", None),
        (
            "/live/reset-circuit-breaker",
            "/live/reset-circuit-breaker",
            None,
        ),
        (
            "/admin/strategies/{id}/{action}",
            "/admin/strategies/mom/pause",
            None,
        ),
        (
            "/admin/strategies/{id}/{action}",
            "/admin/strategies/mom/resume",
            None,
        ),
        (
            "/admin/strategies/{id}/{action}",
            "/admin/strategies/mom/execute",
            None,
        ),
        ("/execute", "/execute", None),
        (
            "/admin/children/{id}/restart",
            "/admin/children/nobody/restart",
            None,
        ),
        ("/admin/cache/clear", "/admin/cache/clear", None),
        ("/cache/clear", "/cache/clear", None),
    ] {
        let method = if template == "/health" { "get" } else { "post" };
        s.take(method, template, url, body).await;
    }
    // Refused: no token.
    let refused = reqwest::Client::new()
        .post(format!("{base}/admin/cache/clear"))
        .send()
        .await
        .unwrap();
    let status = refused.status().as_u16();
    s.taken.push(
        json!({"method": "post", "path": "/admin/cache/clear", "status": status,
        "body": refused.json::<Value>().await.unwrap()}),
    );
    // A restart answers once under way (drains the instance first).
    s.take(
        "post",
        "/admin/strategies/{id}/{action}",
        "/admin/strategies/mom/restart",
        None,
    )
    .await;
    s.take(
        "post",
        "/admin/children/{id}/restart",
        "/admin/children/cache/restart",
        None,
    )
    .await;

    // Every documented route was exercised (bar the two that are not JSON).
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .filter(|(_, path)| path != "/metrics" && path != "/openapi.json")
        .collect();
    let exercised: BTreeSet<(String, String)> = s
        .taken
        .iter()
        .map(|t| {
            (
                t["method"].as_str().unwrap().to_owned(),
                t["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(documented, exercised, "documented vs exercised routes");

    let dir = tempfile::tempdir().unwrap();
    let (doc_file, samples_file) = (dir.path().join("doc.json"), dir.path().join("samples.json"));
    std::fs::write(&doc_file, doc.to_string()).unwrap();
    std::fs::write(&samples_file, Value::Array(s.taken).to_string()).unwrap();
    let out = Command::new(python())
        .arg("tests/openapi/check.py")
        .arg(&doc_file)
        .arg(&samples_file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python ({e}): run ./scripts/test, which installs the validators")
        });
    assert!(
        out.status.success(),
        "the answers do not match the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    herd.signal("TERM");
    assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
}

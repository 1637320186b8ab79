//! Replicas that take accounts over from each other, against a real redis-server (the leases)
//! and a real PostgreSQL (the journal they share), with three herd processes and two accounts
//! on one `herd sim`: each account is driven by exactly one replica; `kill -9` of an owner
//! moves its account to another replica, which reconciles and trades on; a replica paused past
//! its lease (SIGSTOP) wakes fenced and sends nothing; and at the end the venue holds exactly
//! one order per journaled order, every one sent under a lease.

// Test helpers: a failed setup step panics with its message, which is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};

use common::pg::{PgDatabase, connect};
use common::{Herd, eventually, get_json, metric, venue_orders_of};

const ACCOUNTS: [&str; 2] = ["alpha", "beta"];

fn key(account: &str) -> String {
    format!("key-{account}")
}

/// Every replica's configuration: both accounts, an eager instance on each, leases of 3 s
/// (orders must reach the venue within the 1 s call timeout).
fn config(replica: &str) -> String {
    let mut toml = format!(
        "[broker]\ncall_timeout = \"1s\"\n\n[lease]\nenabled = true\nttl = \"3s\"\nreplica = \"{replica}\"\n\n"
    );
    for id in ACCOUNTS {
        let upper = id.to_uppercase();
        toml.push_str(&format!(
            "[[accounts]]\nid = \"{id}\"\nkey_id_env = \"{upper}_KEY\"\nsecret_key_env = \"{upper}_KEY\"\n\n"
        ));
    }
    for id in ACCOUNTS {
        toml.push_str(&format!(
            "[[strategies]]\nid = \"{id}-m\"\naccount = \"{id}\"\nkind = \"momentum\"\nsymbols = [\"SPY\", \"QQQ\", \"IWM\"]\nevery = \"1m\"\n[strategies.params]\nthreshold = 0.0001\nposition_size = 1\ntimeframe = \"1Min\"\nlookback = 5\n\n"
        ));
    }
    toml
}

struct Cluster {
    herds: Vec<Option<Herd>>,
}

impl Cluster {
    fn live(&self) -> impl Iterator<Item = (usize, &Herd)> {
        self.herds
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (i, h)))
    }

    /// Which live replica owns `account`, when exactly one does.
    async fn owner(&self, account: &str) -> Option<(usize, u64)> {
        let mut owners = Vec::new();
        for (i, herd) in self.live() {
            let health = get_json(&format!("{}/health", herd.http)).await?;
            let lease = health["accounts"]
                .as_array()?
                .iter()
                .find(|a| a["account"] == account)?["broker"]["lease"]
                .clone();
            if lease["state"] == "owned" {
                owners.push((i, lease["epoch"].as_u64()?));
            }
        }
        (owners.len() == 1).then(|| owners[0])
    }

    fn any(&self) -> &Herd {
        self.live().next().unwrap().1
    }
}

async fn venue_count(sim: &str, account: &str) -> usize {
    venue_orders_of(sim, &key(account)).await.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_move_between_replicas_without_a_duplicate_or_a_stale_order() {
    let redis =
        std::env::var("HERD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let db = PgDatabase::create("leases").await;
    let prefix = format!("herd-test-leases-{}", std::process::id());
    let sim = Herd::start_sim(&["--speed", "60", "--start", common::BUYING_MINUTE]);
    let url = sim.sim.clone().unwrap();
    let env = [
        ("ALPHA_KEY", key("alpha")),
        ("BETA_KEY", key("beta")),
        ("ALPACA_BASE_URL", url.clone()),
        ("ALPACA_DATA_URL", url.clone()),
        ("HERD__JOURNAL__URL", db.url.clone()),
        ("HERD__REDIS__URL", redis.clone()),
        ("HERD__REDIS__PREFIX", prefix.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // One after the other: the first creates the journal's schema.
    let mut cluster = Cluster {
        herds: (0..3)
            .map(|i| Some(Herd::start(&config(&format!("h{i}")), &env)))
            .collect(),
    };

    // Every account has exactly one owner, and both trade.
    for account in ACCOUNTS {
        eventually("one owner per account", cluster.any(), || {
            cluster.owner(account)
        })
        .await;
        eventually("orders in the account", cluster.any(), || async {
            (venue_count(&url, account).await > 0).then_some(())
        })
        .await;
    }

    // What the owner says of it: /metrics as well as /health.
    let (killed, first_epoch) = cluster.owner("alpha").await.unwrap();
    let owner = cluster.herds[killed].as_ref().unwrap();
    assert_eq!(
        metric(owner, "herd_lease_owned{account=\"alpha\"}").await,
        1.0
    );
    assert_eq!(
        metric(owner, "herd_lease_epoch{account=\"alpha\"}").await,
        first_epoch as f64
    );
    for (i, other) in cluster.live().filter(|(i, _)| *i != killed) {
        let owned = metric(other, "herd_lease_owned{account=\"alpha\"}").await;
        assert_eq!(owned, 0.0, "replica h{i} is not alpha's owner");
        // Its book of alpha is not the one that counts: it says who to ask instead.
        let positions = reqwest::get(format!("{}/positions?account=alpha", other.http))
            .await
            .unwrap();
        assert_eq!(positions.status(), 409, "replica h{i}");
    }

    // kill -9 alpha's owner: another replica owns alpha, in a later epoch, and trades it.
    cluster.herds[killed].as_ref().unwrap().signal("KILL");
    cluster.herds[killed] = None;
    let before = venue_count(&url, "alpha").await;
    let (_, epoch) = eventually("alpha taken over", cluster.any(), || async {
        cluster
            .owner("alpha")
            .await
            .filter(|(_, e)| *e > first_epoch)
    })
    .await;
    assert!(epoch > first_epoch);
    eventually("alpha trading again", cluster.any(), || async {
        (venue_count(&url, "alpha").await > before).then_some(())
    })
    .await;

    // Pause beta's owner past its lease: another replica takes beta over; the paused one wakes
    // fenced, ticks nothing and sends nothing.
    let (paused, stale_epoch) =
        eventually("beta owned", cluster.any(), || cluster.owner("beta")).await;
    let standby_ticks =
        "herd_strategy_ticks_total{instance=\"beta-m\",kind=\"momentum\",outcome=\"standby\"}";
    let standby_before = metric(cluster.herds[paused].as_ref().unwrap(), standby_ticks).await;
    cluster.herds[paused].as_ref().unwrap().signal("STOP");
    let stopped_at = chrono::Utc::now().timestamp_millis();
    let sleeper = cluster.herds[paused].take();
    let (_, new_epoch) = eventually("beta taken over", cluster.any(), || async {
        cluster
            .owner("beta")
            .await
            .filter(|(_, e)| *e > stale_epoch)
    })
    .await;
    assert!(new_epoch > stale_epoch);
    let woken = sleeper.unwrap();
    woken.signal("CONT");
    cluster.herds[paused] = Some(woken);
    let woken = cluster.herds[paused].as_ref().unwrap();
    eventually("the woken replica stands by", woken, || async {
        (metric(woken, standby_ticks).await > standby_before).then_some(())
    })
    .await;
    assert_eq!(cluster.owner("beta").await.map(|(_, e)| e), Some(new_epoch));

    // Stop the live replicas cleanly, then compare the journal with the venue.
    for herd in cluster.herds.iter_mut().flatten() {
        herd.signal("TERM");
        assert_eq!(herd.wait_exit().code(), Some(0), "{}", herd.dump());
    }
    let journal = journaled_orders(&db.url).await;
    for account in ACCOUNTS {
        let venue = venue_orders_of(&url, &key(account)).await;
        let mut at_venue = HashSet::new();
        for order in &venue {
            let cid = order["client_order_id"].as_str().unwrap().to_owned();
            assert!(at_venue.insert(cid.clone()), "{cid} twice at the venue");
            let row = journal
                .get(&cid)
                .unwrap_or_else(|| panic!("{cid} at the venue but not in the journal"));
            assert_eq!(
                row.instance,
                format!("{account}-m"),
                "{cid} in the wrong account"
            );
            assert!(row.epoch.is_some(), "{cid} sent without a lease epoch");
        }
        for (cid, row) in journal
            .iter()
            .filter(|(_, r)| r.instance == format!("{account}-m"))
        {
            if row.order_id.is_some() {
                assert!(
                    at_venue.contains(cid),
                    "{cid} journaled as sent, not at the venue"
                );
            }
        }
    }
    let stale: Vec<&String> = journal
        .iter()
        .filter(|(_, r)| {
            r.instance == "beta-m" && r.epoch == Some(stale_epoch) && r.created_ms > stopped_at
        })
        .map(|(cid, _)| cid)
        .collect();
    assert!(
        stale.is_empty(),
        "orders recorded under a stale epoch after the pause: {stale:?}"
    );
}

struct Row {
    instance: String,
    order_id: Option<String>,
    epoch: Option<u64>,
    created_ms: i64,
}

async fn journaled_orders(url: &str) -> HashMap<String, Row> {
    use sqlx::Row as _;
    let mut conn = connect(url).await;
    let rows = sqlx::query(
        "SELECT client_order_id, instance, order_id, lease_epoch, created_at FROM orders",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            let epoch: Option<i64> = r.get("lease_epoch");
            (
                r.get::<String, _>("client_order_id"),
                Row {
                    instance: r.get("instance"),
                    order_id: r.get("order_id"),
                    epoch: epoch.map(|e| e as u64),
                    created_ms: r.get("created_at"),
                },
            )
        })
        .collect()
}

//! Reaching the venue at start: each account's endpoint (Alpaca, or the embedded simulator
//! with one simulated account per herd account), a separate simulator's speed, the one probe
//! per account before anything trades, and the venue clock every schedule follows.

use std::net::{Ipv4Addr, SocketAddr};

use super::{SIM_KEY, StartError};
use crate::broker::{AlpacaClient, AlpacaError, Endpoint, Snapshots, VenueSpeed};
use crate::domain::{AccountId, Secret, Venue};
use crate::process::ProcessState;
use crate::settings::Settings;
use crate::sim::{SPEED_HEADER, SimServer};
use crate::strategy::schedule::VenueAnchor;

/// Where each account's broker connects, in the accounts' order: Alpaca from the settings, or
/// a freshly started simulator holding one simulated account per herd account.
pub(super) async fn venue_endpoints(
    settings: &Settings,
) -> Result<(Vec<Endpoint>, VenueSpeed, Option<SimServer>), StartError> {
    let b = &settings.broker;
    let accounts = &settings.resolved_accounts;
    let endpoint =
        |trading_url: String, data_url: String, [key_id, secret_key]: [Secret; 2]| Endpoint {
            trading_url,
            data_url,
            key_id,
            secret_key,
            feed: b.feed.clone(),
            adjustment: b.adjustment.clone(),
            call_timeout: b.call_timeout.get(),
        };
    if settings.venue() != Venue::Simulator {
        let endpoints: Vec<_> = accounts
            .iter()
            .map(|a| {
                let keys = [a.key_id.clone(), a.secret_key.clone()];
                endpoint(a.base_url.clone(), b.data_url.clone(), keys)
            })
            .collect();
        let speed = simulator_speed(&endpoints[0]).await;
        return Ok((endpoints, speed, None));
    }
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let sim = SimServer::start(settings.sim.clone(), loopback)
        .await
        .map_err(|e| StartError::Simulator(e.to_string()))?;
    let endpoints = accounts
        .iter()
        .map(|a| {
            let key = Secret::new(&sim_key(&a.id));
            endpoint(sim.base_url(), sim.base_url(), [key.clone(), key])
        })
        .collect();
    Ok((endpoints, VenueSpeed(sim.speed()), Some(sim)))
}

/// The key `account` presents to the embedded simulator, which keeps an account per key.
pub fn sim_key(account: &AccountId) -> String {
    if account.as_str() == AccountId::DEFAULT {
        SIM_KEY.to_owned()
    } else {
        format!("{SIM_KEY}-{account}")
    }
}

/// The venue's clock speed: 1 for Alpaca; a herd simulator run as a separate process says its
/// own in every response ([`SPEED_HEADER`]), and herd's schedules and bar timing follow it.
async fn simulator_speed(endpoint: &Endpoint) -> VenueSpeed {
    let answer = reqwest::Client::new()
        .get(format!("{}/v2/clock", endpoint.trading_url))
        .header("APCA-API-KEY-ID", endpoint.key_id.expose())
        .header("APCA-API-SECRET-KEY", endpoint.secret_key.expose())
        .timeout(endpoint.call_timeout)
        .send()
        .await;
    let speed = answer
        .ok()
        .and_then(|r| {
            r.headers()
                .get(SPEED_HEADER)?
                .to_str()
                .ok()?
                .parse::<f64>()
                .ok()
        })
        .filter(|s| s.is_finite() && *s > 0.0);
    match speed {
        Some(speed) => {
            tracing::info!(
                event = "venue_is_simulator",
                speed,
                "the venue is a herd simulator; schedules and bar timing follow its clock"
            );
            VenueSpeed(speed)
        }
        None => VenueSpeed(1.0),
    }
}

/// One call per account before anything trades: wrong credentials stop herd here with a clear
/// message; an unreachable venue only delays readiness.
pub(super) async fn probe_venue(
    client: &AlpacaClient,
    process: &ProcessState,
    id: &AccountId,
) -> Result<(), StartError> {
    match client.account().await {
        Ok(account) => {
            process.mark_venue_reached();
            tracing::info!(
                account = %id, account_status = %account.status, equity = %account.equity,
                buying_power = %account.buying_power, "venue reached"
            );
            Ok(())
        }
        Err(e @ AlpacaError::Unauthorized { .. }) => Err(StartError::Credentials {
            account: id.to_string(),
            error: e,
        }),
        Err(e) => {
            tracing::warn!(account = %id, error = %e, "venue not reachable yet; herd stays unready until it is");
            Ok(())
        }
    }
}

/// The longest the start waits for the venue's clock before its own clock stands in.
const ANCHOR_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The venue's clock, read once, which every instance's schedule follows (an accelerated
/// simulator's included). Unreadable within [`ANCHOR_WAIT`] (a venue down at start must not
/// hold the start up), the process's own clock stands in: against Alpaca they agree to within
/// clock skew, and ticks then merely fall at another phase.
pub(super) async fn venue_anchor(snapshots: &Snapshots) -> VenueAnchor {
    let error = match tokio::time::timeout(ANCHOR_WAIT, snapshots.clock()).await {
        Ok(Ok(clock)) => {
            return VenueAnchor {
                venue: clock.timestamp,
                real: std::time::Instant::now(),
            };
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {ANCHOR_WAIT:?}"),
    };
    tracing::warn!(error = %error, "venue clock unreadable; schedules follow this process's clock");
    VenueAnchor {
        venue: chrono::Utc::now(),
        real: std::time::Instant::now(),
    }
}

//! The task that acquires, renews and gives back this replica's account leases in Redis.
//!
//! Keys: `{prefix}:lease:{account}` holds `{replica}/{epoch}` and expires after `lease.ttl`;
//! `{prefix}:lease-epoch:{account}` counts acquisitions. Acquiring, renewing and releasing are
//! each one Lua script, so no two replicas can interleave a check with a write.
//!
//! Invariants:
//! - Renewals come every third of `lease.ttl`; each Redis call is bounded by `redis.timeout`.
//!   A lease Redis does not confirm in time is given up locally when it may have expired, so
//!   the account stops trading here before another replica can take it.
//! - An acquired account trades only after its takeover (journal read again, orders in flight
//!   settled, account reconciled) succeeded under the same epoch; a failed takeover lets the
//!   lease run out for another replica to try.
//! - At the drain, no new lease is taken; held ones are given back once the actors have
//!   drained (no order of theirs is in flight), so a standby replica takes over at once.
//! - `herd_lease_*` are published after every round and when a takeover ends (an account
//!   becomes owned between rounds), so /metrics agrees with /health about who owns it.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use redis::Script;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use super::{Lease, LeaseSettings};
use crate::broker::RedisSettings;
use crate::domain::{AccountId, REPEAT_SUMMARY, Repeats, Say};
use crate::metrics::Metrics;

const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '/' .. epoch, 'PX', ARGV[2])
return epoch
";

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// What a replica does on acquiring an account's lease in an epoch, before it trades it:
/// read the journal again and reconcile with the venue. An error leaves the account untraded.
pub type Takeover = Rc<dyn Fn(AccountId, u64) -> LocalBoxFuture<'static, Result<(), String>>>;

pub struct LeaseKeeper {
    client: redis::Client,
    connection: Option<ConnectionManager>,
    prefix: String,
    replica: String,
    ttl: Duration,
    timeout: Duration,
    leases: Vec<Lease>,
    takeover: Takeover,
    metrics: Arc<Metrics>,
    failures: Repeats,
    /// The process's drain signal, which ends a takeover in progress.
    drain: CancellationToken,
}

impl LeaseKeeper {
    pub fn new(
        settings: &LeaseSettings,
        redis: &RedisSettings,
        replica: String,
        leases: Vec<Lease>,
        takeover: Takeover,
        metrics: Arc<Metrics>,
    ) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(redis.url.expose())?,
            connection: None,
            prefix: redis.prefix.clone(),
            replica,
            ttl: settings.ttl.get(),
            timeout: redis.timeout.get(),
            leases,
            takeover,
            metrics,
            failures: Repeats::new(REPEAT_SUMMARY),
            drain: CancellationToken::new(),
        })
    }

    /// Keeps the leases; from `drain` on takes no new one, and once `release` says the actors
    /// have drained, gives back every lease still held.
    pub async fn run(mut self, drain: CancellationToken, release: CancellationToken) {
        self.drain = drain.clone();
        let every = self.ttl / 3;
        loop {
            // Draining, held leases are still renewed (an order in flight finishes under its
            // lease) but no new one is taken.
            self.round(!drain.is_cancelled()).await;
            tokio::select! {
                () = release.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
        for lease in self.leases.clone() {
            if let Some(epoch) = lease.held() {
                let value = self.value(epoch);
                let key = self.key("lease", lease.account());
                let released: Result<i64, String> = self.call(RELEASE, &[key], &[value]).await;
                lease.lost();
                tracing::info!(
                    event = "lease_released", account = %lease.account(), epoch,
                    released = matches!(released, Ok(1)), "account lease given back at the drain"
                );
            }
        }
    }

    /// One pass over every account: renew what is held, try to acquire the rest (`acquire`).
    pub(super) async fn round(&mut self, acquire: bool) {
        for lease in self.leases.clone() {
            match lease.held() {
                Some(epoch) => self.renew(&lease, epoch).await,
                None if acquire => self.acquire(&lease).await,
                None => {}
            }
            publish(&self.metrics, &lease);
        }
    }

    async fn acquire(&mut self, lease: &Lease) {
        let account = lease.account().clone();
        let keys = [
            self.key("lease", &account),
            self.key("lease-epoch", &account),
        ];
        let ttl_ms = self.ttl.as_millis().to_string();
        let sent = Instant::now();
        let epoch: u64 = match self
            .call(ACQUIRE, &keys, &[self.replica.clone(), ttl_ms])
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(epoch) => epoch,
        };
        lease.acquired(epoch, sent, self.ttl);
        tracing::info!(
            event = "lease_acquired", account = %account, epoch, replica = %self.replica,
            "account lease acquired; reconciling before any tick"
        );
        let (takeover, lease) = (Rc::clone(&self.takeover), lease.clone());
        let drain = self.drain.clone();
        let metrics = Arc::clone(&self.metrics);
        actix::spawn(async move {
            // The drain ends a takeover: this replica will not trade the account any more.
            let outcome = tokio::select! {
                () = drain.cancelled() => None,
                outcome = takeover(account.clone(), epoch) => Some(outcome),
            };
            match outcome {
                Some(Ok(())) if lease.reconciled(epoch) => tracing::info!(
                    event = "lease_owned", account = %account, epoch,
                    "account reconciled; its instances trade from this replica"
                ),
                Some(Ok(())) => {}
                // Still held, never traded: the drain's release gives it back at once.
                None => tracing::info!(
                    event = "takeover_abandoned", account = %account, epoch,
                    "herd began draining before the account was reconciled; its lease is given back at the end of the drain"
                ),
                Some(Err(e)) => {
                    // Renewals stop: the lease runs out and another replica may do better.
                    lease.lost();
                    tracing::error!(
                        event = "takeover_failed", account = %account, epoch, error = %e,
                        "cannot reconcile the account after acquiring its lease; letting the lease expire"
                    );
                }
            }
            // The state changed here, between rounds: /metrics says so at once, as /health does.
            publish(&metrics, &lease);
        });
    }

    async fn renew(&mut self, lease: &Lease, epoch: u64) {
        let key = self.key("lease", lease.account());
        let args = [self.value(epoch), self.ttl.as_millis().to_string()];
        let sent = Instant::now();
        match self.call::<i64>(RENEW, &[key], &args).await {
            Ok(1) => lease.renewed(sent, self.ttl),
            Ok(_) => {
                lease.lost();
                tracing::warn!(
                    event = "lease_lost", account = %lease.account(), epoch,
                    "account lease lost (it expired or another replica holds it); standing by"
                );
            }
            Err(_) if lease.expired() => {
                lease.lost();
                tracing::warn!(
                    event = "lease_lost", account = %lease.account(), epoch,
                    "account lease not confirmed before it may have expired; standing by"
                );
            }
            Err(_) => {}
        }
    }

    /// One script call, bounded by `redis.timeout`; failures are logged when they start and
    /// summarized after.
    async fn call<T: redis::FromRedisValue>(
        &mut self,
        source: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<T, String> {
        let result = self.try_call(source, keys, args).await;
        if let Err(e) = &result {
            self.connection = None;
            match self.failures.note() {
                Say::Started { .. } => tracing::warn!(
                    event = "lease_redis_failed", error = %e,
                    "cannot reach Redis for the account leases; held leases stop trading when they may have expired"
                ),
                Say::Summary { count, over } => tracing::warn!(
                    event = "lease_redis_failed", error = %e, failures = count, over_s = over.as_secs(),
                    "Redis still failing for the account leases"
                ),
                Say::Quiet => {}
            }
        }
        result
    }

    async fn try_call<T: redis::FromRedisValue>(
        &mut self,
        source: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<T, String> {
        let mut connection = match &self.connection {
            Some(c) => c.clone(),
            None => {
                let made = tokio::time::timeout(self.timeout, self.client.get_connection_manager())
                    .await
                    .map_err(|_| format!("no connection within {:?}", self.timeout))?
                    .map_err(|e| e.to_string())?;
                self.connection = Some(made.clone());
                made
            }
        };
        let script = Script::new(source);
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(k);
        }
        for a in args {
            invocation.arg(a);
        }
        tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
            .map_err(|e| e.to_string())
    }

    fn key(&self, kind: &str, account: &AccountId) -> String {
        format!("{}:{kind}:{account}", self.prefix)
    }

    fn value(&self, epoch: u64) -> String {
        format!("{}/{epoch}", self.replica)
    }
}

/// The lease's state in `herd_lease_*`.
fn publish(metrics: &Metrics, lease: &Lease) {
    let status = lease.status();
    metrics.lease.set(
        lease.account().as_str(),
        status.state == super::LeaseState::Owned,
        status.epoch,
        status.renewed_seconds_ago,
    );
}

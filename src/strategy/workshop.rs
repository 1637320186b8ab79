//! The workshop: heavy work of strategy cores (training a neural model), done off every actor
//! thread on tokio's blocking pool, at most one job per CPU core at a time for all instances
//! together, with the results kept on disk under the data directory.
//!
//! Invariants:
//! - Never more jobs run than CPU cores: a training never starves the actors or the HTTP
//!   workers of every core, however many neural instances ask at once.
//! - A model file is written whole or not at all (a temporary file renamed into place), so a
//!   crash mid-save leaves the previous model, never a torn one.
//! - A saved model trained under other settings is not used: it is retrained and replaced.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::neural::model::{Model, ModelError, NetConfig, train};
use super::neural::work::{Finished, Work};
use crate::domain::{InstanceId, Symbol};
use crate::metrics::Metrics;

pub struct Workshop {
    /// One permit per CPU core.
    permits: Arc<Semaphore>,
    /// `<data dir>/models`.
    models: PathBuf,
    /// Jobs queued and running.
    metrics: Arc<Metrics>,
}

impl Workshop {
    pub fn new(data_dir: &Path, metrics: Arc<Metrics>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            permits: Arc::new(Semaphore::new(cores)),
            models: data_dir.join("models"),
            metrics,
        }
    }

    /// Where `instance`'s model of `symbol` is kept.
    pub fn model_path(&self, instance: &InstanceId, symbol: &Symbol) -> PathBuf {
        // Symbols may hold '/' (BTC/USD): never a path separator here.
        let file = format!("{}.safetensors", symbol.as_str().replace('/', "_"));
        self.models.join(instance.as_str()).join(file)
    }

    /// Does `work` for `instance`; the future owns everything it needs.
    pub fn run(&self, instance: &InstanceId, work: Work) -> impl Future<Output = Finished> + use<> {
        let permits = Arc::clone(&self.permits);
        let path = self.model_path(instance, work.symbol());
        let instance = instance.clone();
        let metrics = Arc::clone(&self.metrics);
        async move {
            let symbol = work.symbol().clone();
            let queued = metrics.work.job_queued();
            let Ok(_permit) = permits.acquire_owned().await else {
                return Finished {
                    symbol,
                    outcome: Err("the workshop is closed".into()),
                };
            };
            drop(queued);
            let _running = metrics.work.job_running();
            let job = tokio::task::spawn_blocking(move || match work {
                Work::Load { config, .. } => load(&path, &config),
                Work::Train {
                    closes,
                    through,
                    config,
                    ..
                } => train_and_save(&path, &closes, through, &config),
            });
            let outcome = match job.await {
                Ok(result) => result,
                Err(e) => Err(format!("the job failed: {e}")),
            };
            match &outcome {
                Ok(Some(_)) => {}
                Ok(None) => tracing::info!(
                    event = "model_absent", instance = %instance, symbol = %symbol,
                    "no saved model under these settings; it will be trained"
                ),
                Err(e) => tracing::warn!(
                    event = "model_failed", instance = %instance, symbol = %symbol, error = %e,
                    "model work failed"
                ),
            }
            Finished { symbol, outcome }
        }
    }
}

fn load(path: &Path, config: &NetConfig) -> Result<Option<Arc<Model>>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    match Model::from_bytes(&bytes, config) {
        Ok(model) => {
            tracing::info!(event = "model_loaded", path = %path.display(), "model loaded from disk");
            Ok(Some(Arc::new(model)))
        }
        Err(ModelError::OtherSettings(_)) => Ok(None),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "saved model unusable; retraining");
            Ok(None)
        }
    }
}

fn train_and_save(
    path: &Path,
    closes: &[f64],
    through: chrono::DateTime<chrono::Utc>,
    config: &NetConfig,
) -> Result<Option<Arc<Model>>, String> {
    let started = Instant::now();
    let model = train(closes, through, config).map_err(|e| e.to_string())?;
    tracing::info!(
        event = "model_trained", path = %path.display(), closes = closes.len(),
        duration_ms = started.elapsed().as_millis() as u64, train_loss = model.train_loss,
        "model trained"
    );
    save(path, &model)?;
    Ok(Some(Arc::new(model)))
}

fn save(path: &Path, model: &Model) -> Result<(), String> {
    let bytes = model.to_bytes().map_err(|e| e.to_string())?;
    let dir = path.parent().ok_or("a model path has a directory")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let partial = path.with_extension("safetensors.partial");
    std::fs::write(&partial, bytes)
        .map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
    std::fs::rename(&partial, path).map_err(|e| format!("cannot save {}: {e}", path.display()))
}

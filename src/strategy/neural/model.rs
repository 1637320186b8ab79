//! The forecasting network and its training, on candle: two LSTM layers over a window of
//! min–max scaled closes, then a ReLU layer and a linear output that forecasts the scaled close
//! `horizon` bars after the window (the seed's architecture: LSTM(50) → dropout → LSTM(50) →
//! dropout → Dense(25, relu) → Dense(1), Adam at 0.001 on squared error).
//!
//! Invariants:
//! - Deterministic: the same closes and [`NetConfig`] give the same weights, bit for bit. candle
//!   cannot seed its CPU random generator, so herd draws every random number itself from a PCG
//!   stream keyed by the seed: initial weights, the batch order of each epoch, dropout masks.
//! - A model is only used with the scaling it was trained with, and only if its fingerprint
//!   (every field of its config) matches the instance's configuration.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::rnn::{LSTM, LSTMConfig, RNN};
use candle_nn::{AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use chrono::{DateTime, Utc};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::{Deserialize, Serialize};

use super::forecast::Forecaster;

/// The network and how it is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Closes per input window.
    pub lookback: usize,
    /// Bars after the window's last whose close is forecast.
    pub horizon: usize,
    /// Units of each LSTM layer.
    pub hidden: usize,
    /// Units of the ReLU layer.
    pub dense: usize,
    /// Share of units dropped after each LSTM layer while training.
    pub dropout: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl NetConfig {
    /// Every field, so that a model trained under other settings is never used.
    pub fn fingerprint(&self) -> String {
        format!(
            "v1 lookback={} horizon={} hidden={} dense={} dropout={} epochs={} batch={} lr={} seed={}",
            self.lookback,
            self.horizon,
            self.hidden,
            self.dense,
            self.dropout,
            self.epochs,
            self.batch_size,
            self.learning_rate,
            self.seed
        )
    }

    /// Closes needed to train at all: the window, the horizon and ten samples.
    pub fn min_closes(&self) -> usize {
        self.lookback + self.horizon + 9
    }
}

/// Why no model came out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("too few closes to train: {have}, at least {need} needed")]
    TooFewCloses { have: usize, need: usize },
    #[error("the closes do not move: nothing to learn")]
    Flat,
    #[error("the saved model was trained under other settings ({0})")]
    OtherSettings(String),
    #[error("the saved model is unreadable: {0}")]
    Unreadable(String),
    #[error("tensor computation failed: {0}")]
    Tensor(String),
}

impl From<candle_core::Error> for ModelError {
    fn from(e: candle_core::Error) -> Self {
        Self::Tensor(e.to_string())
    }
}

/// Min–max scaling of closes to [0, 1], fixed at training time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    pub min: f64,
    pub range: f64,
}

impl Scale {
    fn of(closes: &[f64]) -> Result<Self, ModelError> {
        let min = closes.iter().copied().fold(f64::INFINITY, f64::min);
        let max = closes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let range = max - min;
        if !(range > 0.0 && range.is_finite()) {
            return Err(ModelError::Flat);
        }
        Ok(Self { min, range })
    }

    fn to(self, price: f64) -> f32 {
        ((price - self.min) / self.range) as f32
    }

    fn from(self, scaled: f32) -> f64 {
        f64::from(scaled) * self.range + self.min
    }
}

struct Net {
    first: LSTM,
    second: LSTM,
    dense: Linear,
    out: Linear,
}

impl Net {
    fn new(cfg: &NetConfig, vb: &VarBuilder) -> Result<Self, ModelError> {
        let layer = |n: usize| LSTMConfig {
            layer_idx: n,
            ..LSTMConfig::default()
        };
        Ok(Self {
            first: candle_nn::lstm(1, cfg.hidden, layer(0), vb.pp("lstm1"))?,
            second: candle_nn::lstm(cfg.hidden, cfg.hidden, layer(0), vb.pp("lstm2"))?,
            dense: candle_nn::linear(cfg.hidden, cfg.dense, vb.pp("dense"))?,
            out: candle_nn::linear(cfg.dense, 1, vb.pp("out"))?,
        })
    }

    /// `[batch, window, 1]` → `[batch, 1]`; `masks` are the two dropout masks while training.
    fn forward(&self, x: &Tensor, masks: Option<(&Tensor, &Tensor)>) -> Result<Tensor, ModelError> {
        let states = self.first.seq(x)?;
        let mut h = self.first.states_to_tensor(&states)?;
        if let Some((m1, _)) = masks {
            h = h.broadcast_mul(m1)?;
        }
        let states = self.second.seq(&h)?;
        let mut last = states
            .last()
            .ok_or_else(|| ModelError::Tensor("an empty window".into()))?
            .h()
            .clone();
        if let Some((_, m2)) = masks {
            last = last.broadcast_mul(m2)?;
        }
        let hidden = self.dense.forward(&last)?.relu()?;
        Ok(self.out.forward(&hidden)?)
    }
}

/// A trained network, with the scaling and bars it was trained on.
pub struct Model {
    forecaster: Forecaster,
    tensors: HashMap<String, Tensor>,
    pub scale: Scale,
    /// Start of the newest bar it was trained on.
    pub trained_through: DateTime<Utc>,
    pub fingerprint: String,
    pub lookback: usize,
    /// Mean squared error (scaled) of the last epoch.
    pub train_loss: f64,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("scale", &self.scale)
            .field("trained_through", &self.trained_through)
            .field("fingerprint", &self.fingerprint)
            .field("train_loss", &self.train_loss)
            .finish_non_exhaustive()
    }
}

const META_SCALE_MIN: &str = "scale_min";
const META_SCALE_RANGE: &str = "scale_range";
const META_THROUGH: &str = "trained_through";
const META_FINGERPRINT: &str = "fingerprint";
const META_LOSS: &str = "train_loss";
const META_LOOKBACK: &str = "lookback";

impl Model {
    /// The close forecast `horizon` bars after the newest of `closes` (at least `lookback`),
    /// computed on the weights directly (`forecast.rs`), not through candle.
    pub fn predict(&self, closes: &[f64]) -> Result<f64, ModelError> {
        if closes.len() < self.lookback {
            return Err(ModelError::TooFewCloses {
                have: closes.len(),
                need: self.lookback,
            });
        }
        let window: Vec<f32> = closes[closes.len() - self.lookback..]
            .iter()
            .map(|c| self.scale.to(*c))
            .collect();
        Ok(self.scale.from(self.forecaster.forecast(&window)?))
    }

    /// Every weight by name, in name order: what "the same model" compares.
    #[cfg(test)]
    fn weights(&self) -> Vec<(String, Vec<f32>)> {
        let mut all: Vec<_> = self
            .tensors
            .iter()
            .map(|(n, t)| {
                (
                    n.clone(),
                    t.flatten_all()
                        .and_then(|t| t.to_vec1())
                        .unwrap_or_default(),
                )
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The weights and what goes with them, as a safetensors file (the header's key order is
    /// the safetensors crate's, so two saves of one model may differ byte for byte).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        let metadata: HashMap<String, String> = [
            (META_SCALE_MIN, self.scale.min.to_string()),
            (META_SCALE_RANGE, self.scale.range.to_string()),
            (META_THROUGH, self.trained_through.to_rfc3339()),
            (META_FINGERPRINT, self.fingerprint.clone()),
            (META_LOSS, self.train_loss.to_string()),
            (META_LOOKBACK, self.lookback.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut named: Vec<(&String, &Tensor)> = self.tensors.iter().collect();
        named.sort_by(|a, b| a.0.cmp(b.0));
        safetensors::serialize(named, Some(metadata))
            .map_err(|e| ModelError::Unreadable(e.to_string()))
    }

    /// A model saved by [`Model::to_bytes`], if it was trained under `cfg`.
    pub fn from_bytes(bytes: &[u8], cfg: &NetConfig) -> Result<Model, ModelError> {
        let unreadable = |e: &dyn std::fmt::Display| ModelError::Unreadable(e.to_string());
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| unreadable(&e))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            meta.get(k)
                .cloned()
                .ok_or_else(|| ModelError::Unreadable(format!("no {k}")))
        };
        let fingerprint = get(META_FINGERPRINT)?;
        if fingerprint != cfg.fingerprint() {
            return Err(ModelError::OtherSettings(fingerprint));
        }
        let number = |k: &str| -> Result<f64, ModelError> {
            get(k)?
                .parse()
                .map_err(|e: std::num::ParseFloatError| unreadable(&e))
        };
        let scale = Scale {
            min: number(META_SCALE_MIN)?,
            range: number(META_SCALE_RANGE)?,
        };
        let trained_through = DateTime::parse_from_rfc3339(&get(META_THROUGH)?)
            .map_err(|e| unreadable(&e))?
            .with_timezone(&Utc);
        let tensors = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        Ok(Model {
            forecaster: Forecaster::new(&tensors)?,
            tensors,
            scale,
            trained_through,
            fingerprint,
            lookback: cfg.lookback,
            train_loss: number(META_LOSS)?,
        })
    }
}

/// Trains on `closes` (oldest first, the newest bar starting at `through`).
pub fn train(closes: &[f64], through: DateTime<Utc>, cfg: &NetConfig) -> Result<Model, ModelError> {
    let need = cfg.min_closes();
    if closes.len() < need {
        return Err(ModelError::TooFewCloses {
            have: closes.len(),
            need,
        });
    }
    let scale = Scale::of(closes)?;
    let scaled: Vec<f32> = closes.iter().map(|c| scale.to(*c)).collect();
    // Sample i: the window [i, i + lookback), target the close `horizon` bars after its last.
    let samples = scaled.len() - cfg.lookback - cfg.horizon + 1;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let net = Net::new(cfg, &vb)?;
    let mut rng = Pcg64Mcg::seed_from_u64(cfg.seed);
    seed_weights(&varmap, &mut rng)?;
    let params = ParamsAdamW {
        lr: cfg.learning_rate,
        weight_decay: 0.0,
        ..ParamsAdamW::default()
    };
    let mut optimizer = AdamW::new(varmap.all_vars(), params)?;
    let keep = 1.0 - cfg.dropout;
    let mut order: Vec<usize> = (0..samples).collect();
    let mut last_loss = 0.0;
    for _ in 0..cfg.epochs {
        shuffle(&mut order, &mut rng);
        let mut total = 0.0;
        for batch in order.chunks(cfg.batch_size.max(1)) {
            let b = batch.len();
            let mut xs = Vec::with_capacity(b * cfg.lookback);
            let mut ys = Vec::with_capacity(b);
            for &i in batch {
                xs.extend_from_slice(&scaled[i..i + cfg.lookback]);
                ys.push(scaled[i + cfg.lookback + cfg.horizon - 1]);
            }
            let x = Tensor::from_vec(xs, (b, cfg.lookback, 1), &Device::Cpu)?;
            let y = Tensor::from_vec(ys, (b, 1), &Device::Cpu)?;
            let m1 = mask(&mut rng, (b, cfg.lookback, cfg.hidden), keep)?;
            let m2 = mask(&mut rng, (b, cfg.hidden), keep)?;
            let prediction = net.forward(&x, Some((&m1, &m2)))?;
            let loss = candle_nn::loss::mse(&prediction, &y)?;
            optimizer.backward_step(&loss)?;
            total += f64::from(loss.to_scalar::<f32>()?) * b as f64;
        }
        last_loss = total / samples as f64;
    }
    let tensors = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::Tensor("weights lock poisoned".into()))?
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    Ok(Model {
        forecaster: Forecaster::new(&tensors)?,
        tensors,
        scale,
        trained_through: through,
        fingerprint: cfg.fingerprint(),
        lookback: cfg.lookback,
        train_loss: last_loss,
    })
}

/// Every weight from `rng`, uniform in ±1/√fan-in (PyTorch's LSTM and linear default), in name
/// order so the draw order is fixed.
fn seed_weights(varmap: &VarMap, rng: &mut Pcg64Mcg) -> Result<(), ModelError> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| ModelError::Tensor("weights lock poisoned".into()))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        let var = &vars[name];
        let dims = var.dims().to_vec();
        // Weights are [out, in]; a bias takes the fan-in of its layer's weight.
        let fan_in = match dims.as_slice() {
            [_, fan_in] => *fan_in,
            _ => {
                let weight = name.replace("bias", "weight");
                vars.get(&weight)
                    .and_then(|w| w.dims().get(1).copied())
                    .unwrap_or(1)
            }
        };
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let n: usize = dims.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        var.set(&Tensor::from_vec(values, dims.as_slice(), &Device::Cpu)?)?;
    }
    Ok(())
}

/// Fisher–Yates with `rng`.
fn shuffle(order: &mut [usize], rng: &mut Pcg64Mcg) {
    for i in (1..order.len()).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
}

/// A dropout mask: each unit kept with probability `keep` and scaled by 1/keep.
fn mask(
    rng: &mut Pcg64Mcg,
    shape: impl Into<candle_core::Shape>,
    keep: f64,
) -> Result<Tensor, ModelError> {
    let shape = shape.into();
    let scale = (1.0 / keep.max(1e-6)) as f32;
    let values: Vec<f32> = (0..shape.elem_count())
        .map(|_| {
            if rng.random::<f64>() < keep {
                scale
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn small() -> NetConfig {
        NetConfig {
            lookback: 12,
            horizon: 3,
            hidden: 8,
            dense: 6,
            dropout: 0.1,
            epochs: 12,
            batch_size: 16,
            learning_rate: 0.03,
            seed: 7,
        }
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap()
    }

    /// A clean sine around 100 with a period of 24 bars.
    fn sine(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 100.0 + 5.0 * (i as f64 * std::f64::consts::TAU / 24.0).sin())
            .collect()
    }

    #[test]
    fn the_same_closes_give_the_same_weights_and_the_same_forecast() {
        let closes = sine(120);
        let cfg = NetConfig {
            epochs: 3,
            ..small()
        };
        let a = train(&closes, at(), &cfg).unwrap();
        let b = train(&closes, at(), &cfg).unwrap();
        assert_eq!(a.weights(), b.weights(), "bit-identical weights");
        assert_eq!(a.predict(&closes).unwrap(), b.predict(&closes).unwrap());
        let other = train(&closes, at(), &NetConfig { seed: 8, ..cfg }).unwrap();
        assert_ne!(a.weights(), other.weights(), "the seed matters");
    }

    #[test]
    fn a_forecast_is_candles_forward_pass_of_the_same_weights() {
        // The default network's sizes (two layers of 50, a window of 60), one epoch: what is
        // compared is the function of the weights, not how good they are.
        let closes = sine(200);
        let cfg = NetConfig {
            epochs: 1,
            ..crate::strategy::neural::NeuralForecastParams::default().net()
        };
        let model = train(&closes, at(), &cfg).unwrap();
        let vb = VarBuilder::from_tensors(model.tensors.clone(), DType::F32, &Device::Cpu);
        let net = Net::new(&cfg, &vb).unwrap();
        for end in [cfg.lookback, 100, 150, 200] {
            let window: Vec<f32> = closes[end - cfg.lookback..end]
                .iter()
                .map(|c| model.scale.to(*c))
                .collect();
            let x = Tensor::from_vec(window, (1, cfg.lookback, 1), &Device::Cpu).unwrap();
            let on_candle = net.forward(&x, None).unwrap().flatten_all().unwrap();
            let on_candle = model.scale.from(on_candle.to_vec1::<f32>().unwrap()[0]);
            let forecast = model.predict(&closes[..end]).unwrap();
            // f32 sums in another order: equal to a few units in the last place of the scaled
            // value, times the closes' range (10 here). Gates taken in another order miss by
            // thousandths.
            assert!(
                (forecast - on_candle).abs() < 1e-6,
                "window ending at {end}: {forecast} against candle's {on_candle}"
            );
        }
    }

    #[test]
    fn a_model_of_a_sine_forecasts_it_better_than_tomorrow_equals_today() {
        let closes = sine(240);
        let cfg = small();
        let model = train(&closes[..200], at(), &cfg).unwrap();
        // Forecast bars 200..240 from their preceding windows, never seen in training.
        let (mut model_err, mut naive_err) = (0.0, 0.0);
        let mut n = 0.0;
        for end in 200..(240 - cfg.horizon + 1) {
            let target = closes[end + cfg.horizon - 1];
            let forecast = model.predict(&closes[..end]).unwrap();
            model_err += (forecast - target).powi(2);
            naive_err += (closes[end - 1] - target).powi(2);
            n += 1.0;
        }
        let (model_rmse, naive_rmse) = ((model_err / n).sqrt(), (naive_err / n).sqrt());
        eprintln!("held-out RMSE: model {model_rmse:.4}, tomorrow-equals-today {naive_rmse:.4}");
        assert!(
            model_rmse < naive_rmse,
            "model {model_rmse:.4} vs naive {naive_rmse:.4}"
        );
    }

    #[test]
    fn a_saved_model_loads_only_under_its_own_settings() {
        let closes = sine(120);
        let cfg = NetConfig {
            epochs: 2,
            ..small()
        };
        let model = train(&closes, at(), &cfg).unwrap();
        let bytes = model.to_bytes().unwrap();
        let back = Model::from_bytes(&bytes, &cfg).unwrap();
        assert_eq!(
            back.predict(&closes).unwrap(),
            model.predict(&closes).unwrap()
        );
        assert_eq!(
            (back.scale, back.trained_through),
            (model.scale, model.trained_through)
        );
        let changed = NetConfig { hidden: 9, ..cfg };
        assert!(matches!(
            Model::from_bytes(&bytes, &changed),
            Err(ModelError::OtherSettings(_))
        ));
        assert!(matches!(
            Model::from_bytes(b"junk", &small()),
            Err(ModelError::Unreadable(_))
        ));
    }

    #[test]
    fn too_few_or_flat_closes_train_nothing() {
        assert_eq!(
            train(&sine(10), at(), &small()).unwrap_err(),
            ModelError::TooFewCloses { have: 10, need: 24 }
        );
        assert_eq!(
            train(&[100.0; 40], at(), &small()).unwrap_err(),
            ModelError::Flat
        );
    }
}

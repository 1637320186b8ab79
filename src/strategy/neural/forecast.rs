//! A trained network's forecast, computed on its weights with nalgebra instead of candle.
//!
//! One forecast runs a window of 60 closes through two LSTM layers: on candle that is about
//! 2,000 tensor operations of a 200 × 50 matrix and a vector each, and each operation's
//! bookkeeping (a new tensor, its layout, its storage) costs more than its arithmetic. Here a
//! layer's input projections for the whole window are one matrix product, and each step one
//! matrix–vector product into vectors allocated once per layer, so a forecast costs about its
//! arithmetic. Training stays on candle, which it needs for the gradients; this is the same
//! function of the same weights, and a test holds it to candle's forward pass.
//!
//! Invariants:
//! - Gates are in candle's (and PyTorch's) order: input, forget, cell, output; a layer's two
//!   biases are added as one.
//! - Without dropout: dropout is a training-time mask only.

use std::collections::HashMap;

use candle_core::Tensor;
use nalgebra::{DMatrix, DVector};

use super::model::ModelError;

/// The network's weights, as the forecast uses them.
pub(super) struct Forecaster {
    first: Layer,
    second: Layer,
    dense: Dense,
    out: Dense,
}

impl Forecaster {
    /// From a model's named tensors (candle's names: `lstm1.weight_ih_l0`, `dense.weight`, …).
    pub fn new(tensors: &HashMap<String, Tensor>) -> Result<Self, ModelError> {
        let first = Layer::new(tensors, "lstm1")?;
        let second = Layer::new(tensors, "lstm2")?;
        let dense = Dense::new(tensors, "dense")?;
        let out = Dense::new(tensors, "out")?;
        // Checked here, not left to the products below, which panic on sizes that disagree.
        let fits = first.w_ih.ncols() == 1
            && second.w_ih.ncols() == first.hidden
            && dense.weight.ncols() == second.hidden
            && out.weight.ncols() == dense.weight.nrows()
            && out.weight.nrows() == 1;
        if !fits {
            return Err(ModelError::Tensor(
                "the layers' sizes do not follow one another".into(),
            ));
        }
        Ok(Self {
            first,
            second,
            dense,
            out,
        })
    }

    /// The scaled forecast from a window of scaled closes, oldest first.
    pub fn forecast(&self, window: &[f32]) -> Result<f32, ModelError> {
        if window.is_empty() {
            return Err(ModelError::Tensor("an empty window".into()));
        }
        let closes = DMatrix::from_row_slice(1, window.len(), window);
        let first = self.first.states(&closes);
        let second = self.second.states(&first);
        let last = second.column(second.ncols() - 1).clone_owned();
        let hidden = self.dense.apply(&last).map(|v| v.max(0.0));
        Ok(self.out.apply(&hidden)[0])
    }
}

/// One LSTM layer.
struct Layer {
    /// `[4·hidden, inputs]`.
    w_ih: DMatrix<f32>,
    /// `[4·hidden, hidden]`.
    w_hh: DMatrix<f32>,
    /// `b_ih + b_hh`.
    bias: DVector<f32>,
    hidden: usize,
}

impl Layer {
    fn new(tensors: &HashMap<String, Tensor>, name: &str) -> Result<Self, ModelError> {
        let w_ih = matrix(tensors, &format!("{name}.weight_ih_l0"))?;
        let w_hh = matrix(tensors, &format!("{name}.weight_hh_l0"))?;
        let b_ih = vector(tensors, &format!("{name}.bias_ih_l0"))?;
        let b_hh = vector(tensors, &format!("{name}.bias_hh_l0"))?;
        let hidden = w_hh.ncols();
        let gates = 4 * hidden;
        if [w_hh.nrows(), w_ih.nrows(), b_ih.len(), b_hh.len()] != [gates; 4] {
            return Err(ModelError::Tensor(format!(
                "{name}: gate weights and biases are not 4 × {hidden} rows"
            )));
        }
        let bias = b_ih + b_hh;
        Ok(Self {
            w_ih,
            w_hh,
            bias,
            hidden,
        })
    }

    /// The hidden state after each step; `inputs` has one column per step, oldest first.
    fn states(&self, inputs: &DMatrix<f32>) -> DMatrix<f32> {
        let h = self.hidden;
        // Every step's input projection at once, biases included.
        let mut projected = &self.w_ih * inputs;
        for mut column in projected.column_iter_mut() {
            column += &self.bias;
        }
        let mut states = DMatrix::zeros(h, inputs.ncols());
        let mut state = DVector::zeros(h);
        let mut cell = DVector::<f32>::zeros(h);
        let mut gates = DVector::zeros(4 * h);
        for (step, input) in projected.column_iter().enumerate() {
            gates.copy_from(&input);
            gates.gemv(1.0, &self.w_hh, &state, 1.0);
            for j in 0..h {
                let input_gate = sigmoid(gates[j]);
                let forget_gate = sigmoid(gates[h + j]);
                let candidate = tanh(gates[2 * h + j]);
                let output_gate = sigmoid(gates[3 * h + j]);
                cell[j] = forget_gate * cell[j] + input_gate * candidate;
                state[j] = output_gate * tanh(cell[j]);
            }
            states.set_column(step, &state);
        }
        states
    }
}

/// A linear layer: `weight · x + bias`.
struct Dense {
    /// `[outputs, inputs]`.
    weight: DMatrix<f32>,
    bias: DVector<f32>,
}

impl Dense {
    fn new(tensors: &HashMap<String, Tensor>, name: &str) -> Result<Self, ModelError> {
        let weight = matrix(tensors, &format!("{name}.weight"))?;
        let bias = vector(tensors, &format!("{name}.bias"))?;
        if bias.len() != weight.nrows() {
            return Err(ModelError::Tensor(format!(
                "{name}: {} biases for {} outputs",
                bias.len(),
                weight.nrows()
            )));
        }
        Ok(Self { weight, bias })
    }

    fn apply(&self, x: &DVector<f32>) -> DVector<f32> {
        &self.weight * x + &self.bias
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// tanh by `exp`, exact to a few units of f32's last place in absolute terms (what the gates
/// need): the standard library's `f32::tanh` (glibc's `tanhf`, through `expm1f`) was half of
/// a forecast's time, and `exp` is a fraction of it. Large |x| gives ±1 (`exp` reaches 0 or ∞).
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / ((2.0 * x).exp() + 1.0)
}

fn tensor<'a>(tensors: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor, ModelError> {
    tensors
        .get(name)
        .ok_or_else(|| ModelError::Unreadable(format!("no tensor {name}")))
}

fn matrix(tensors: &HashMap<String, Tensor>, name: &str) -> Result<DMatrix<f32>, ModelError> {
    let rows = tensor(tensors, name)?.to_vec2::<f32>()?;
    let ncols = rows.first().map_or(0, Vec::len);
    Ok(DMatrix::from_row_iterator(
        rows.len(),
        ncols,
        rows.into_iter().flatten(),
    ))
}

fn vector(tensors: &HashMap<String, Tensor>, name: &str) -> Result<DVector<f32>, ModelError> {
    Ok(DVector::from_vec(tensor(tensors, name)?.to_vec1::<f32>()?))
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// A network of `hidden` units on `inputs` inputs per step, every weight 0.1.
    fn tensors(inputs: usize, hidden: usize) -> HashMap<String, Tensor> {
        let t = |shape: &[usize]| Tensor::full(0.1f32, shape, &Device::Cpu).unwrap();
        let mut all = HashMap::new();
        for (layer, width) in [("lstm1", inputs), ("lstm2", hidden)] {
            all.insert(format!("{layer}.weight_ih_l0"), t(&[4 * hidden, width]));
            all.insert(format!("{layer}.weight_hh_l0"), t(&[4 * hidden, hidden]));
            all.insert(format!("{layer}.bias_ih_l0"), t(&[4 * hidden]));
            all.insert(format!("{layer}.bias_hh_l0"), t(&[4 * hidden]));
        }
        all.insert("dense.weight".into(), t(&[3, hidden]));
        all.insert("dense.bias".into(), t(&[3]));
        all.insert("out.weight".into(), t(&[1, 3]));
        all.insert("out.bias".into(), t(&[1]));
        all
    }

    #[test]
    fn weights_of_sizes_that_disagree_are_an_error_not_a_panic() {
        let forecaster = Forecaster::new(&tensors(1, 4)).unwrap();
        assert!(forecaster.forecast(&[0.1, 0.5, 0.9]).unwrap().is_finite());
        assert!(forecaster.forecast(&[]).is_err());
        let two_inputs = Forecaster::new(&tensors(2, 4));
        assert!(two_inputs.is_err(), "one close a step");
        let mut short_bias = tensors(1, 4);
        short_bias.insert(
            "lstm2.bias_hh_l0".into(),
            Tensor::zeros(&[15], candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        let Err(ModelError::Tensor(why)) = Forecaster::new(&short_bias) else {
            panic!("a bias of 15 for 16 gates was taken");
        };
        assert!(why.contains("lstm2"), "{why}");
        let mut missing = tensors(1, 4);
        missing.remove("out.bias");
        assert!(matches!(
            Forecaster::new(&missing),
            Err(ModelError::Unreadable(why)) if why.contains("out.bias")
        ));
    }

    #[test]
    fn tanh_by_exp_is_the_standard_librarys_to_f32_precision() {
        for i in -20_000..=20_000 {
            let x = i as f32 / 1_000.0;
            assert!((tanh(x) - x.tanh()).abs() < 1e-6, "tanh({x})");
        }
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
        assert!(tanh(f32::NAN).is_nan());
    }
}

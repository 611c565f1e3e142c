//! Head-only training: the encoder stays frozen and a small classification head (linear, or
//! linear → ReLU → linear) learns from its embeddings with softmax cross-entropy and AdamW.
//! Written once over [`TrainOps`], so the same step runs on the CPU and on the GPU.
//!
//! The step matches PyTorch (`nn.Linear`, `F.cross_entropy`, `torch.optim.AdamW`); the tests
//! compare it with goldens from `tests/fixtures/make_train_goldens.py`.

use super::backend::{AdamWConfig, Backend, Result, TrainOps};
use super::rng::SplitMix64;
use super::EngineError;

/// The head's shape: `input` features (the encoder's width), an optional ReLU hidden layer,
/// `classes` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadConfig {
    pub input: usize,
    pub hidden: Option<usize>,
    pub classes: usize,
}

impl HeadConfig {
    /// Parameter names and shapes in a fixed order (the order of [`Head::to_host`], of the
    /// random initialisation and of the optimizer state). The names are PyTorch's, so saved
    /// heads load there too.
    pub fn params(&self) -> Vec<(&'static str, Vec<usize>)> {
        let mut out = Vec::with_capacity(4);
        let cls_in = match self.hidden {
            Some(h) => {
                out.push(("hidden.weight", vec![h, self.input]));
                out.push(("hidden.bias", vec![h]));
                h
            }
            None => self.input,
        };
        out.push(("classifier.weight", vec![self.classes, cls_in]));
        out.push(("classifier.bias", vec![self.classes]));
        out
    }

    fn check(&self) -> Result<()> {
        if self.input == 0 || self.classes == 0 || self.hidden == Some(0) {
            return Err(EngineError::Input(format!(
                "head: every layer needs a size, got {self:?}"
            )));
        }
        Ok(())
    }
}

/// One named parameter on the host, row-major (what a safetensors file stores).
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A classification head on a backend. Parameters are in [`HeadConfig::params`] order.
pub struct Head<B: Backend> {
    config: HeadConfig,
    params: Vec<B::Tensor>,
}

impl<B: Backend> Clone for Head<B> {
    fn clone(&self) -> Self {
        Self {
            config: self.config,
            params: self.params.clone(),
        }
    }
}

impl<B: Backend> Head<B> {
    /// A fresh head, initialised as PyTorch's `nn.Linear` does (weights and biases uniform in
    /// ±1/√fan_in, i.e. kaiming-uniform with a = √5) from `seed` with our own PRNG.
    pub fn new(be: &B, config: HeadConfig, seed: u64) -> Result<Self> {
        config.check()?;
        let mut rng = SplitMix64(seed);
        let weights = config
            .params()
            .into_iter()
            .map(|(name, shape)| {
                // fan_in is the weight's second dimension; a bias shares its layer's.
                let fan_in = match name {
                    "hidden.weight" | "hidden.bias" => config.input,
                    _ => config.hidden.unwrap_or(config.input),
                };
                let bound = 1.0 / (fan_in as f64).sqrt();
                let len = shape.iter().product();
                HostTensor {
                    name: name.to_string(),
                    shape,
                    data: (0..len).map(|_| rng.uniform(bound)).collect(),
                }
            })
            .collect::<Vec<_>>();
        Self::from_host(be, config, &weights)
    }

    /// A head from host weights, named as [`HeadConfig::params`] (in any order).
    pub fn from_host(be: &B, config: HeadConfig, weights: &[HostTensor]) -> Result<Self> {
        config.check()?;
        let expected = config.params();
        if weights.len() != expected.len() {
            return Err(EngineError::Input(format!(
                "head: {} tensors where {:?} expects {}",
                weights.len(),
                config,
                expected.len()
            )));
        }
        let params = expected
            .iter()
            .map(|(name, shape)| {
                let w = weights
                    .iter()
                    .find(|w| w.name == *name)
                    .ok_or_else(|| EngineError::Input(format!("head: no tensor {name}")))?;
                if w.shape != *shape || w.data.len() != shape.iter().product::<usize>() {
                    return Err(EngineError::Input(format!(
                        "head: {name} is {:?} ({} values), expected {shape:?}",
                        w.shape,
                        w.data.len()
                    )));
                }
                be.upload(&w.data, shape)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { config, params })
    }

    /// The weights on the host, in [`HeadConfig::params`] order.
    pub fn to_host(&self, be: &B) -> Result<Vec<HostTensor>> {
        self.config
            .params()
            .into_iter()
            .zip(&self.params)
            .map(|((name, shape), t)| {
                Ok(HostTensor {
                    name: name.to_string(),
                    shape,
                    data: be.download(t)?,
                })
            })
            .collect()
    }

    /// [`Head::to_host`] with a read-back that does not block (the browser's WebGPU).
    pub async fn to_host_async(&self, be: &B) -> Result<Vec<HostTensor>> {
        let refs: Vec<&B::Tensor> = self.params.iter().collect();
        let data = be.download_all_async(&refs).await?;
        Ok(self
            .config
            .params()
            .into_iter()
            .zip(data)
            .map(|((name, shape), data)| HostTensor {
                name: name.to_string(),
                shape,
                data,
            })
            .collect())
    }

    pub fn config(&self) -> HeadConfig {
        self.config
    }

    /// The parameters on the backend, in [`HeadConfig::params`] order.
    pub fn params(&self) -> &[B::Tensor] {
        &self.params
    }

    /// `(hidden activations after ReLU if any, logits [n, classes])` for `x [n, input]`.
    fn forward(&self, be: &B, x: &B::Tensor) -> Result<(Option<B::Tensor>, B::Tensor)> {
        let shape = be.shape(x);
        if shape.len() != 2 || shape[1] != self.config.input {
            return Err(EngineError::Input(format!(
                "head: input {shape:?}, expected [rows, {}]",
                self.config.input
            )));
        }
        let p = &self.params;
        match self.config.hidden {
            Some(_) => {
                let h = be.relu(&be.linear(x, &p[0], Some(&p[1]))?)?;
                let logits = be.linear(&h, &p[2], Some(&p[3]))?;
                Ok((Some(h), logits))
            }
            None => Ok((None, be.linear(x, &p[0], Some(&p[1]))?)),
        }
    }

    /// Logits `[n, classes]` for embeddings `x [n, input]`.
    pub fn logits(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor> {
        Ok(self.forward(be, x)?.1)
    }
}

impl<B: TrainOps> Head<B> {
    /// The mean cross-entropy loss `[1]` on `(x, labels)` and its gradient for every
    /// parameter, in [`HeadConfig::params`] order (what `loss.backward()` leaves in `.grad`).
    pub fn loss_and_grads(
        &self,
        be: &B,
        x: &B::Tensor,
        labels: &[u32],
    ) -> Result<(B::Tensor, Vec<B::Tensor>)> {
        let (h, logits) = self.forward(be, x)?;
        let (loss, dlogits) = be.softmax_xent(&logits, labels)?;
        let p = &self.params;
        let grads = match &h {
            Some(h) => {
                let dh = be.matmul(&dlogits, &p[2])?;
                let dz = be.relu_backward(&dh, h)?;
                vec![
                    be.matmul_tn(&dz, x)?,
                    be.sum_rows(&dz)?,
                    be.matmul_tn(&dlogits, h)?,
                    be.sum_rows(&dlogits)?,
                ]
            }
            None => vec![be.matmul_tn(&dlogits, x)?, be.sum_rows(&dlogits)?],
        };
        Ok((loss, grads))
    }
}

/// A head and its AdamW state. Each [`HeadTrainer::step`] is one `optimizer.step()` on one
/// batch; the optimizer state starts at zero, as a fresh `torch.optim.AdamW` does.
pub struct HeadTrainer<B: TrainOps> {
    head: Head<B>,
    config: AdamWConfig,
    m: Vec<B::Tensor>,
    v: Vec<B::Tensor>,
    steps: u64,
}

impl<B: TrainOps> HeadTrainer<B> {
    pub fn new(be: &B, head: Head<B>, config: AdamWConfig) -> Result<Self> {
        let zeros = head
            .config
            .params()
            .iter()
            .map(|(_, shape)| be.upload(&vec![0.0; shape.iter().product()], shape))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            head,
            config,
            m: zeros.clone(),
            v: zeros,
            steps: 0,
        })
    }

    /// A trainer starting from host weights (see [`Head::from_host`]).
    pub fn from_host(be: &B, head: HeadConfig, weights: &[HostTensor], config: AdamWConfig) -> Result<Self> {
        Self::new(be, Head::from_host(be, head, weights)?, config)
    }

    /// Forward, softmax cross-entropy, backward and an AdamW update of every parameter on one
    /// batch of embeddings `x [n, input]` with one label per row. Returns the loss before the
    /// update (what a PyTorch loop records), read back to the host.
    pub fn step(&mut self, be: &B, x: &B::Tensor, labels: &[u32]) -> Result<f32> {
        let loss = self.step_lazy(be, x, labels)?;
        Ok(be.download(&loss)?[0])
    }

    /// [`HeadTrainer::step`] leaving the loss `[1]` on the backend: no read-back, so the GPU
    /// is not waited for (the browser reads it back asynchronously, or not every step).
    pub fn step_lazy(&mut self, be: &B, x: &B::Tensor, labels: &[u32]) -> Result<B::Tensor> {
        let (loss, grads) = self.head.loss_and_grads(be, x, labels)?;
        let step = self.steps + 1;
        for (i, g) in grads.iter().enumerate() {
            let (p, m, v) = be.adamw(
                &self.head.params[i],
                g,
                &self.m[i],
                &self.v[i],
                step,
                &self.config,
            )?;
            self.head.params[i] = p;
            self.m[i] = m;
            self.v[i] = v;
        }
        self.steps = step;
        Ok(loss)
    }

    pub fn head(&self) -> &Head<B> {
        &self.head
    }

    pub fn into_head(self) -> Head<B> {
        self.head
    }

    /// Updates done so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn to_host(&self, be: &B) -> Result<Vec<HostTensor>> {
        self.head.to_host(be)
    }
}

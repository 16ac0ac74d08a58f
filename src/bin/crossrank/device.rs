//! `--device`: where the CLI computes. The default build is CPU-only; `--features cuda` adds
//! CUDA device 0 (see README, "CUDA").

use candle_core::Device;
use crossrank::{Error, Result};

#[derive(Clone, Copy, clap::ValueEnum)]
enum DeviceName {
    Cpu,
    Cuda,
}

#[derive(clap::Args)]
pub struct DeviceArg {
    /// Where to compute.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceName,
}

impl DeviceArg {
    pub fn open(&self) -> Result<Device> {
        match self.device {
            DeviceName::Cpu => Ok(Device::Cpu),
            DeviceName::Cuda => open_cuda(),
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda() -> Result<Device> {
    Device::new_cuda(0).map_err(|e| Error::Unsupported(format!("no usable CUDA device 0 ({}); run with --device cpu", cuda_cause(&e))))
}

/// The driver's error name (`CUDA_ERROR_NO_DEVICE`) rather than candle's whole error, which
/// carries a backtrace and, without a driver's message table, "<Failure when calling …>".
#[cfg(feature = "cuda")]
fn cuda_cause(error: &candle_core::Error) -> String {
    let inner = match error {
        candle_core::Error::WithBacktrace { inner, .. } => inner.as_ref(),
        other => other,
    };
    let text = inner.to_string();
    match text.find("CUDA_ERROR_") {
        Some(start) => text[start..].chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect(),
        None => text.lines().next().unwrap_or_default().to_string(),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda() -> Result<Device> {
    Err(Error::Unsupported("--device cuda needs a crossrank built with `--features cuda` (./build.sh cuda)".into()))
}

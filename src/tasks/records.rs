//! Models and optimizers as named checkpoint parts, for every task.

use anyhow::{Result, anyhow};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;

use crate::train::task::{Part, part};

/// A module's record as a checkpoint part. `valid()` first: it folds BatchNorm's pending
/// running-statistics update into the stored value, which a plain `into_record()` would read one
/// step stale.
pub fn module_part<M: Module>(name: &str, module: &M) -> Result<Part> {
    let bytes = module
        .valid()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow!("cannot serialize the {name}: {e:?}"))?;
    Ok((name.to_string(), bytes.to_vec()))
}

/// Applies the `name` part of a checkpoint to a freshly built module of the same config.
pub fn load_module<M: Module>(module: M, parts: &[Part], name: &str) -> Result<M> {
    let bytes = part(parts, name)?;
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| anyhow!("cannot read the {name} record: {e:?}"))?;
    module
        .try_load_record(record)
        .map_err(|e| anyhow!("the checkpoint's {name} does not match the configured one: {e:?}"))
}

/// An optimizer's state as a checkpoint part.
pub fn optim_part(name: &str, optim: &ModuleOptimizer) -> Result<Part> {
    let bytes = optim
        .into_bytes()
        .map_err(|e| anyhow!("cannot serialize the {name} state: {e:?}"))?;
    Ok((name.to_string(), bytes.to_vec()))
}

/// Restores an optimizer's state from the `name` part (after its module's part: loading a
/// module restores its parameter ids, which key the optimizer state).
pub fn load_optim(optim: &ModuleOptimizer, parts: &[Part], name: &str) -> Result<ModuleOptimizer> {
    optim
        .clone()
        .from_bytes(Bytes::from_bytes_vec(part(parts, name)?.to_vec()))
        .map_err(|e| anyhow!("cannot load the {name} state: {e:?}"))
}

/// The checkpoint parts of a generator–discriminator pair and their two optimizers (the GAN's
/// and the restorer's).
pub fn pair_parts<G: Module, D: Module>(
    g: &G,
    d: &D,
    opt_g: &ModuleOptimizer,
    opt_d: &ModuleOptimizer,
) -> Result<Vec<Part>> {
    Ok(vec![
        module_part("generator", g)?,
        module_part("discriminator", d)?,
        optim_part("optim_g", opt_g)?,
        optim_part("optim_d", opt_d)?,
    ])
}

/// Restores what `pair_parts` wrote: the two networks (taken from their slots and put back)
/// and then their optimizers.
pub fn load_pair<G: Module, D: Module>(
    g: &mut Option<G>,
    d: &mut Option<D>,
    opt_g: &mut ModuleOptimizer,
    opt_d: &mut ModuleOptimizer,
    parts: &[Part],
) -> Result<()> {
    *g = Some(load_module(
        g.take().expect("generator present"),
        parts,
        "generator",
    )?);
    *d = Some(load_module(
        d.take().expect("discriminator present"),
        parts,
        "discriminator",
    )?);
    *opt_g = load_optim(opt_g, parts, "optim_g")?;
    *opt_d = load_optim(opt_d, parts, "optim_d")?;
    Ok(())
}

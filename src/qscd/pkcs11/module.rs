//! The process-wide registry of loaded PKCS#11 modules: one `Pkcs11` context per module
//! (`context`), C_Initialize once and again only on a `rescan`, and the count of open
//! `Pkcs11Qscd` that use each module (`ModuleUse`), which keeps a rescan from closing their
//! sessions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};

use super::super::QscdError;

/// A loaded module: its context (C_Initialize happens once per process, and again only on a
/// rescan) and how many open `Pkcs11Qscd` use it.
struct Module {
    ctx: Pkcs11,
    users: usize,
}

fn modules() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Module>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Module>>> = OnceLock::new();
    MODULES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn initialize(ctx: &Pkcs11) -> Result<(), QscdError> {
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| QscdError::Config(format!("C_Initialize failed: {e}")))
}

/// The process-wide context for a module.
pub(super) fn context(module: &Path) -> Result<Pkcs11, QscdError> {
    let mut map = modules();
    if let Some(m) = map.get(module) {
        return Ok(m.ctx.clone());
    }
    let ctx = Pkcs11::new(module)
        .map_err(|e| QscdError::Config(format!("cannot load {}: {e}", module.display())))?;
    initialize(&ctx)?;
    map.insert(
        module.to_path_buf(),
        Module {
            ctx: ctx.clone(),
            users: 0,
        },
    );
    Ok(ctx)
}

/// C_Finalize and C_Initialize the module again, so that it reads its tokens afresh (SoftHSM2
/// reads its token directory only at C_Initialize, and skips a token whose files it caught
/// half-written by another process). Only while no open `Pkcs11Qscd` of this process uses the
/// module (C_Finalize closes every session); `false` when one does.
pub(super) fn rescan(module: &Path) -> Result<bool, QscdError> {
    let map = modules();
    let Some(m) = map.get(module) else {
        return Ok(false);
    };
    if m.users > 0 {
        return Ok(false);
    }
    if let Err(e) = m.ctx.clone().finalize() {
        tracing::debug!(error = %e, "C_Finalize before a rescan");
    }
    initialize(&m.ctx)?;
    Ok(true)
}

/// Counts one user of a module for as long as it lives (the last field of `Pkcs11Qscd`, so it
/// goes after the sessions).
pub(super) struct ModuleUse(PathBuf);

impl ModuleUse {
    pub(super) fn new(module: &Path) -> Self {
        if let Some(m) = modules().get_mut(module) {
            m.users += 1;
        }
        ModuleUse(module.to_path_buf())
    }
}

impl Drop for ModuleUse {
    fn drop(&mut self) {
        if let Some(m) = modules().get_mut(&self.0) {
            m.users = m.users.saturating_sub(1);
        }
    }
}

//! STUB (replaced by the proc branch).
#![allow(missing_docs)]
use crate::config::Config;
use crate::error::Result;
use std::time::Duration;
pub enum Phase {
    PreLock,
    PostLock,
    PostReboot,
    Heartbeat,
    Status,
}
pub struct Context {
    pub phase: Phase,
    pub dry_run: bool,
    pub lock_held: bool,
    pub lock_attempts: u32,
    pub skip_health: bool,
    pub skip_lock: bool,
}
pub struct HealthReport {
    pub healthy: bool,
    pub reason: String,
    pub output: String,
    pub duration: Duration,
}
pub fn check(_cfg: &Config, _ctx: &Context) -> Result<HealthReport> {
    todo!()
}

//! STUB (replaced by the proc branch).
#![allow(missing_docs)]
use crate::config::DetectorSpec;
use std::time::Duration;
#[derive(Debug, Clone)]
pub enum Verdict {
    Required,
    NotRequired,
    Failed(String),
}
#[derive(Debug, Clone)]
pub struct DetectorReport {
    pub name: String,
    pub kind: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    pub output: String,
    pub duration: Duration,
}
pub enum Need {
    Required { by: Vec<String> },
    NotRequired,
    Unknown { failed: Vec<String> },
}
pub fn run_all(_specs: &[DetectorSpec], _env: &[(String, String)]) -> Vec<DetectorReport> {
    todo!()
}
pub fn decide(_reports: &[DetectorReport]) -> Need {
    todo!()
}

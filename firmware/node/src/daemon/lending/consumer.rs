//! The consumer's driver (core's `ConsumerBook`): not built yet.

use std::sync::Arc;

use crate::daemon::app::App;

#[derive(Default)]
pub struct ConsumerState {}

pub async fn run(_app: Arc<App>) {}

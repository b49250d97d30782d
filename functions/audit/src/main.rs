//! Lambda entry point, fed by the table's DynamoDB stream: see
//! `shared::audit::handle`.

use shared::audit::{Event, handle};

fn main() -> std::process::ExitCode {
    shared::runtime::start_events(|app, event: Event| handle(&app.store, event))
}

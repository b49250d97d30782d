//! Lambda entry point, fed by the table's DynamoDB stream: see
//! `shared::handlers::audit`.

use shared::handlers::audit::{Event, handle};

fn main() -> std::process::ExitCode {
    shared::runtime::start_events(|app, event: Event| handle(&app.store, event))
}

//! Lambda entry point: see `shared::handlers::create_ticket`.

fn main() -> std::process::ExitCode {
    shared::runtime::start(shared::handlers::create_ticket::handle)
}

//! Lambda entry point: see `shared::handlers::update_task`.

fn main() -> std::process::ExitCode {
    shared::runtime::start(shared::handlers::update_task::handle)
}

//! Lambda entry point: see `shared::handlers::create_task`.

fn main() -> std::process::ExitCode {
    shared::runtime::start(shared::handlers::create_task::handle)
}

//! Lambda entry point: see `shared::handlers::get_task`.

fn main() -> std::process::ExitCode {
    shared::runtime::start(shared::handlers::get_task::handle)
}

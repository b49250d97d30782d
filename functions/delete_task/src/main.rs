//! Lambda entry point: see `shared::handlers::delete_task`.

fn main() -> std::process::ExitCode {
    shared::runtime::start(shared::handlers::delete_task::handle)
}

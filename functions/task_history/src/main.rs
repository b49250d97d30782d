//! Lambda entry point: see `shared::handlers::task_history`.

fn main() -> std::process::ExitCode {
    shared::runtime::start(shared::handlers::task_history::handle)
}

//! Lambda entry point: see `shared::handlers::list_tasks`.

fn main() -> std::process::ExitCode {
    shared::runtime::start(shared::handlers::list_tasks::handle)
}

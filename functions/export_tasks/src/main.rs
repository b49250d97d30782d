//! Lambda entry point (streamed responses): see `shared::handlers::export_tasks`.

fn main() -> std::process::ExitCode {
    shared::runtime::start_streaming(shared::handlers::export_tasks::handle)
}

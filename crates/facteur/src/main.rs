fn main() -> std::process::ExitCode {
    facteur::run_cli()
}

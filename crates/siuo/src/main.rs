fn main() {
    std::process::exit(siuo::run_cli());
}

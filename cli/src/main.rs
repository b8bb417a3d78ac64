//! The `pnfsgw` command.

fn main() {
    eprintln!("pnfsgw: not built yet");
    std::process::exit(2);
}

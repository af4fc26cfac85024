//! `swarmkeep-testimage HOST:PORT [NAME:TAG ...]`: builds the busybox image
//! the tests use (the host's static busybox) and pushes it to the registry
//! at HOST:PORT (default name `library/busybox:latest`), for the quick start
//! and for trying swarmkeep on a machine with no internet.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(addr) = args.next() else {
        eprintln!("usage: swarmkeep-testimage HOST:PORT [NAME:TAG ...]");
        std::process::exit(2);
    };
    let mut names: Vec<String> = args.collect();
    if names.is_empty() {
        names.push("library/busybox:latest".into());
    }
    let registry = swarmkeep_tests::registry::Registry::at(&addr);
    for name in names {
        let (digest, _) = registry.push(&name, swarmkeep_tests::registry::busybox_image());
        println!("{addr}/{name} {digest}");
    }
}

//! Every input kept in `fuzz/corpus/<target>/`, replayed through its
//! target on the stable toolchain: an input that once crashed a parser (or
//! that the fuzzer found interesting) keeps being checked in CI.

use std::fs;
use std::path::Path;

#[test]
fn every_kept_input_passes_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (name, target) in fuzz_targets::TARGETS {
        let dir = corpus.join(name);
        let entries =
            fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
        let mut inputs = 0;
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let data =
                fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} fails", path.display());
            inputs += 1;
        }
        // A target whose corpus went missing would pass on nothing.
        assert!(
            inputs >= 10,
            "{name}: only {inputs} inputs in {}",
            dir.display()
        );
    }
}

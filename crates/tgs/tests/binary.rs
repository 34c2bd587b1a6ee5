//! The binary under test is the one users install: under CI it is the
//! release build (`TGS_TEST_BIN`, see `common::tgs_bin`), which lacks what
//! dev-dependencies switch on in shared crates. These checks run there.

mod common;

use common::{run, TestEnv};

#[test]
fn the_binary_under_test_compiles_every_builtin_pattern() {
    let env = TestEnv::new();
    let (code, out, err) = run(env.tgs_cmd(env.path()).args(["debug", "self-check"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: "), "{out}");
}

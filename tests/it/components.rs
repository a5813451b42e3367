//! Rules built elsewhere: a component in Rust runs like a JS rule; anything that is not a
//! component implementing the world is refused.

use serde_json::json;
use tests::{engine, event, repo};
use tokenhost::rules::{CompileError, DenialCode, Outcome, RuleInput};

fn rust_rule() -> Vec<u8> {
    let path = repo().join("tests/fixtures/rust-rule.wasm");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (built by `make fixtures`)", path.display()))
}

#[test]
fn a_rule_written_in_rust_runs_through_the_same_world() {
    let rule = engine().compile_component(&rust_rule()).unwrap();
    let execution = engine().execute(&rule, &event("gold-client.json"));
    let token = execution.outcome.token().expect("token");
    assert_eq!(token.scope, vec!["read:reports", "admin", "rust"]);
    assert_eq!(token.claims["https://tokenhost.dev/tier"], json!("gold"));
    assert_eq!(
        execution.logs[0].message,
        "rust rule for gold-client on https://reports.example.com/"
    );

    let blocked =
        RuleInput::from_json(r#"{"client": {"id": "b", "metadata": {"blocked": "true"}}}"#)
            .unwrap();
    match engine().execute(&rule, &blocked).outcome {
        Outcome::Denied { denial } => assert_eq!(denial.code, DenialCode::AccessDenied),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_core_module_is_not_accepted() {
    let error = engine()
        .compile_component(tokenhost::rules::RULE_RUNTIME)
        .unwrap_err();
    assert!(
        matches!(error, CompileError::InvalidComponent(_)),
        "{error:?}"
    );
}

#[test]
fn a_component_without_the_world_is_refused() {
    // The smallest valid component: no imports, no exports.
    let empty = b"\0asm\x0d\0\x01\0";
    let error = engine().compile_component(empty).unwrap_err();
    assert!(
        matches!(error, CompileError::InvalidComponent(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("execute"), "{error}");
}

#[test]
fn garbage_is_refused() {
    let error = engine()
        .compile_component(b"\0asm\x0d\0\x01\0garbage")
        .unwrap_err();
    assert!(
        matches!(error, CompileError::InvalidComponent(_)),
        "{error:?}"
    );
}

/// A component that instantiates one core module `copies` times; each instance defines
/// one memory if `memory`.
fn many_instances(copies: u32, memory: bool) -> Vec<u8> {
    use wasm_encoder::{
        Component, InstanceSection, MemorySection, MemoryType, Module, ModuleArg, ModuleSection,
    };
    let mut module = Module::new();
    if memory {
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        module.section(&memories);
    }
    let mut component = Component::new();
    component.section(&ModuleSection(&module));
    let mut instances = InstanceSection::new();
    for _ in 0..copies {
        instances.instantiate(0, std::iter::empty::<(&str, ModuleArg)>());
    }
    component.section(&instances);
    component.finish()
}

#[test]
fn a_component_larger_than_its_share_of_the_pool_is_refused_at_upload() {
    use tokenhost::rules::{CORE_INSTANCES_PER_RULE, MEMORIES_PER_RULE};
    // One over each share: refused by the compile, before any execution could fail.
    for (wasm, what) in [
        (
            many_instances(MEMORIES_PER_RULE + 1, true),
            "linear memories",
        ),
        (
            many_instances(CORE_INSTANCES_PER_RULE + 1, false),
            "core module instances",
        ),
    ] {
        let error = engine().compile_component(&wasm).unwrap_err();
        assert!(
            matches!(error, CompileError::InvalidComponent(_)),
            "{error:?}"
        );
        assert!(error.to_string().contains(what), "{error}");
    }
    // Within its share, the same shape gets past the pool's checks to the world's.
    let fits = engine()
        .compile_component(&many_instances(MEMORIES_PER_RULE, true))
        .unwrap_err();
    assert!(fits.to_string().contains("execute"), "{fits}");
}

//! `make bench-rules`: per-execution cost of a rule through the public engine API.
//!
//! Prints, for a no-op rule (the baseline) and the seed rule, measured in the same run:
//! median and p99 time per execution (fresh store and instance each time), fuel, and the
//! seed rule's overhead over the baseline; then upload-to-ready (JS source to a rule that
//! can run) once the per-process pre-initializer is warm. `--markdown` prints a table for
//! BENCHMARKS.md; `--json` one JSON object (what `bench/run.py` reads to set a rule's cost
//! in the server beside its cost alone).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use tokenhost::rules::{CompiledRule, Limits, RuleEngine, RuleInput};

const WARMUP: usize = 500;
const ITERATIONS: usize = 5_000;
const COMPILES: usize = 5;

const NOOP_RULE: &str =
    "module.exports = function (client, scope, audience, context, cb) { cb(null, {}); };";
const SEED_RULE: &str = include_str!("../../rules/myrule.js");

struct Figures {
    median: Duration,
    p99: Duration,
    fuel: u64,
}

fn measure(engine: &RuleEngine, rule: &CompiledRule, input: &RuleInput) -> Figures {
    for _ in 0..WARMUP {
        assert!(engine.execute(rule, input).outcome.token().is_some());
    }
    let mut times = Vec::with_capacity(ITERATIONS);
    let mut fuel = 0;
    for _ in 0..ITERATIONS {
        let started = Instant::now();
        let execution = engine.execute(rule, input);
        times.push(started.elapsed());
        fuel = execution.fuel_used;
    }
    times.sort();
    Figures {
        median: times[times.len() / 2],
        p99: times[times.len() * 99 / 100],
        fuel,
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let markdown = std::env::args().any(|a| a == "--markdown");
    let json = std::env::args().any(|a| a == "--json");
    let engine = RuleEngine::new(Limits::default()).expect("engine");
    let warm = Instant::now();
    engine.warm_up().expect("warm up");
    let warm_up = warm.elapsed();

    let mut compile_times = Vec::new();
    let mut seed = None;
    for i in 0..COMPILES {
        // A distinct source each time, as distinct uploads would be.
        let source = format!("{SEED_RULE}\n// upload {i}\n");
        let started = Instant::now();
        let rule = engine.compile_js(&source).expect("compile");
        compile_times.push(started.elapsed());
        seed = Some(rule);
    }
    compile_times.sort();
    let seed = seed.expect("compiled");
    let noop = engine.compile_js(NOOP_RULE).expect("compile noop");

    let input = RuleInput::from_json(
        r#"{"client": {"id": "bench", "name": "Bench"}, "scope": ["test"], "audience": "https://api.example.com/"}"#,
    )
    .expect("input");
    let base = measure(&engine, &noop, &input);
    let rule = measure(&engine, &seed, &input);
    let upload = compile_times[compile_times.len() / 2];

    if json {
        let figures = |f: &Figures| serde_json::json!({"median_us": us(f.median), "p99_us": us(f.p99), "fuel": f.fuel});
        let report = serde_json::json!({
            "noop": figures(&base),
            "seed": figures(&rule),
            "upload_s": upload.as_secs_f64(),
        });
        println!("{report}");
    } else if markdown {
        println!("| rule | median | p99 | fuel |");
        println!("|---|---|---|---|");
        println!(
            "| no-op (baseline) | {:.1} us | {:.1} us | {} |",
            us(base.median),
            us(base.p99),
            base.fuel
        );
        println!(
            "| seed rule | {:.1} us | {:.1} us | {} |",
            us(rule.median),
            us(rule.p99),
            rule.fuel
        );
        println!();
        println!(
            "- seed rule over baseline: {:+.1} us median",
            us(rule.median) - us(base.median)
        );
        println!(
            "- upload-to-ready (JS -> snapshot -> component -> Cranelift), median of {COMPILES}: {:.3} s (max {:.3} s)",
            upload.as_secs_f64(),
            compile_times[compile_times.len() - 1].as_secs_f64()
        );
        println!(
            "- one-off per process: pre-initializer instrumentation and compile {:.3} s",
            warm_up.as_secs_f64()
        );
    } else {
        println!("executions: {ITERATIONS} each after {WARMUP} warm-up, fresh store per execution");
        println!(
            "no-op rule:  median {:7.1} us  p99 {:7.1} us  fuel {}",
            us(base.median),
            us(base.p99),
            base.fuel
        );
        println!(
            "seed rule:   median {:7.1} us  p99 {:7.1} us  fuel {}",
            us(rule.median),
            us(rule.p99),
            rule.fuel
        );
        println!(
            "seed - no-op (median): {:+.1} us",
            us(rule.median) - us(base.median)
        );
        println!(
            "upload-to-ready median {:.3} s (max {:.3} s) over {COMPILES} uploads",
            upload.as_secs_f64(),
            compile_times[compile_times.len() - 1].as_secs_f64()
        );
        println!(
            "pre-initializer warm-up (once per process): {:.3} s",
            warm_up.as_secs_f64()
        );
        println!("targets: median <= 60 us, p99 <= 150 us, seed within 40 us of no-op, upload-to-ready <= 1.5 s");
    }
}

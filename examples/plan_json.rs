//! Benchmark: the JSON plan written by the streaming hand writer (`render::json::write_plan`)
//! against the derived serde writer of the same type (`PlanDoc::of_plan` + `serde_json`), and
//! read back through `PlanDoc`.
//!
//! `cargo run --release --example plan_json -- [CHANGES]` (default 1,000,000 changes of 3
//! attribute values each). Prints the best of 3 runs of each.

use std::time::{Duration, Instant};

use timattr::model::{Attrs, Desired, Names};
use timattr::render::json::{write_plan, PlanDoc};

fn plan(n: usize) -> timattr::plan::Plan {
    let names = Names::new(&["sex".into(), "city".into(), "tier".into()]);
    let accounts = (0..n)
        .map(|i| {
            let attrs: Attrs = [
                (0u8, if i % 2 == 0 { "m" } else { "f" }.into()),
                (1u8, format!("city{}", i % 7).into_boxed_str()),
                (2u8, format!("tier{}", i % 3).into_boxed_str()),
            ]
            .into_iter()
            .collect();
            (format!("user{i:08}").into_boxed_str(), attrs.into())
        })
        .collect();
    let desired = Desired {
        names: names.clone(),
        accounts,
    };
    let slots = [(0, "sex".into()), (1, "city".into()), (2, "tier".into())].into();
    timattr::plan::diff(desired, Vec::new(), names, &slots).expect("plan")
}

fn best(mut run: impl FnMut() -> usize) -> (Duration, usize) {
    let mut fastest = Duration::MAX;
    let mut bytes = 0;
    for _ in 0..3 {
        let started = Instant::now();
        bytes = run();
        fastest = fastest.min(started.elapsed());
    }
    (fastest, bytes)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("CHANGES must be a number"))
        .unwrap_or(1_000_000);
    let plan = plan(n);
    let (hand, hand_bytes) = best(|| {
        let mut out = Vec::with_capacity(200 * n);
        write_plan(&mut out, &plan, None, None).expect("write");
        out.len()
    });
    let (derived, derived_bytes) = best(|| {
        let mut out = Vec::with_capacity(200 * n);
        serde_json::to_writer(&mut out, &PlanDoc::of_plan(&plan, None, None)).expect("write");
        out.len()
    });
    let mut text = Vec::new();
    write_plan(&mut text, &plan, None, None).expect("write");
    let (read, _) = best(|| {
        let doc: PlanDoc = serde_json::from_slice(&text).expect("read");
        doc.changes.len()
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("JSON plan of {n} changes (best of 3):");
    println!("  hand writer     {:>8.1} ms  {hand_bytes} bytes", ms(hand));
    println!(
        "  derived writer  {:>8.1} ms  {derived_bytes} bytes",
        ms(derived)
    );
    println!("  derived reader  {:>8.1} ms", ms(read));
    println!(
        "  hand writer is {:.1}x faster",
        derived.as_secs_f64() / hand.as_secs_f64()
    );
}

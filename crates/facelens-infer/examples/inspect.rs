//! Print a model's outputs and time it on a constant input:
//! `cargo run --release -p facelens-infer --example inspect -- model.onnx 1,3,480,640 [threads] [--backend rten|ort|auto]`
//! (`--backend ort` needs `--features ort` and `ORT_DYLIB_PATH`; see scripts/fetch-onnxruntime.sh.)
use facelens_infer::{BackendKind, ModelBytes, Tensor, create_backend};
use std::time::Instant;

const RUNS: usize = 21;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut kind = BackendKind::Rten;
    if let Some(i) = args.iter().position(|a| a == "--backend") {
        kind = args.get(i + 1).ok_or("--backend needs a value")?.parse()?;
        args.drain(i..i + 2);
    }
    let usage = "usage: inspect MODEL SHAPE [THREADS] [--backend rten|ort|auto]";
    let path = args.first().ok_or(usage)?;
    let shape: Vec<usize> = args
        .get(1)
        .ok_or(usage)?
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let threads = args.get(2).map(|t| t.parse()).transpose()?.unwrap_or(0);
    let backend = create_backend(kind, threads)?;
    println!("backend: {}, threads: {threads}", backend.name());
    let model = backend.load(path, ModelBytes::Owned(std::fs::read(path)?))?;
    let n = shape.iter().product();
    let input = Tensor::new(shape, vec![0.5; n]).ok_or("shape")?;
    let out = model.run(&input)?;
    for (name, t) in model.output_names().iter().zip(&out) {
        println!("{name}: {:?}", t.shape);
    }
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        model.run(&input)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "median {:.2} ms (min {:.2}, max {:.2}, {RUNS} runs)",
        times[RUNS / 2],
        times[0],
        times[RUNS - 1]
    );
    Ok(())
}

//! Print a model's outputs and time it on a zero input:
//! `cargo run --release -p facelens-infer --example inspect -- model.onnx 1,3,480,640 [threads]`
use facelens_infer::{Backend, ModelBytes, RtenBackend, Tensor};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: inspect MODEL SHAPE [THREADS]")?;
    let shape: Vec<usize> = args.get(2).ok_or("shape")?.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?;
    let threads = args.get(3).map(|t| t.parse()).transpose()?.unwrap_or(0);
    let backend = RtenBackend::new(threads);
    let model = backend.load(path, ModelBytes::Owned(std::fs::read(path)?))?;
    let n = shape.iter().product();
    let input = Tensor::new(shape, vec![0.5; n]).ok_or("shape")?;
    let out = model.run(&input)?;
    for (name, t) in model.output_names().iter().zip(&out) {
        println!("{name}: {:?}", t.shape);
    }
    let mut times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        model.run(&input)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!("median {:.2} ms", times[5]);
    Ok(())
}

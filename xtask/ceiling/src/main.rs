//! `ceiling FILE`: serves FILE's bytes at `/body` (see the library).

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let Some(file) = std::env::args_os().nth(1) else {
        eprintln!("usage: ceiling FILE");
        std::process::exit(2);
    };
    ceiling::run(std::path::Path::new(&file)).await
}

//! Cheap drift checks that need no JVM: the committed model matches its lock, and
//! generated/ matches its stamp (nobody edited generator output by hand).

use xtask::project::Project;

#[test]
fn committed_model_and_generated_crate_are_consistent() {
    let project = Project::at(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    match xtask::regen::verify_committed(&project) {
        Ok(state) => println!("{state}"),
        Err(err) => panic!("{err:#}"),
    }
}

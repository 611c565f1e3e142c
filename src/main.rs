//! The page: mounts the Leptos app (see `webformer::ui`).
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(webformer::ui::App);
}

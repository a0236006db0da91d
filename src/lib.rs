#[napi_derive::napi]
pub fn hash(data: napi::bindgen_prelude::Buffer) -> String {
    blake3::hash(&data).to_hex().to_string()
}

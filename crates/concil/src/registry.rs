//! The OCI Distribution API client: auth challenges, manifests and blobs.

/** The part of sodium-native (libsodium's Node binding) Shoal uses: authenticated encryption of secrets at rest. */
declare module 'sodium-native' {
  export const crypto_aead_xchacha20poly1305_ietf_ABYTES: number;
  export const crypto_aead_xchacha20poly1305_ietf_NPUBBYTES: number;
  export const crypto_aead_xchacha20poly1305_ietf_KEYBYTES: number;
  /** Writes the ciphertext (message length plus ABYTES) into `ciphertext`; returns the bytes written. */
  export function crypto_aead_xchacha20poly1305_ietf_encrypt(ciphertext: Buffer, message: Buffer, additionalData: Buffer | null, nsec: null, nonce: Buffer, key: Buffer): number;
  /** Writes the message into `message`; throws when the ciphertext or the associated data was altered, or the key is another. */
  export function crypto_aead_xchacha20poly1305_ietf_decrypt(message: Buffer, nsec: null, ciphertext: Buffer, additionalData: Buffer | null, nonce: Buffer, key: Buffer): number;
  export function randombytes_buf(buffer: Buffer): void;
  export function sodium_memzero(buffer: Buffer): void;
}

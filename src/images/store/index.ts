export { checkPullArguments, ChecksumMismatch, ImageStore } from './image-store.ts';
export type { ImageFormat, ImageRecord, ImageVerification, ImportOptions, PullOptions, PullResult, RemoveResult, ResolvedImage, StoreOutcome, StoreResult } from './image-store.ts';
export { instancesUsingImage } from './image-users.ts';

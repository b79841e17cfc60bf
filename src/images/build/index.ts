export {
  BUILDER_VERSION,
  DEFAULT_IMAGE_SIZE_BYTES,
  PARTITION_OFFSET_BYTES,
  buildImage,
  validateBuild,
  imageFileName,
  recipeKey,
  sha256File,
  type BuildImageOptions,
  type BuildPhase,
  type BuiltImage,
} from './build-image.ts';
export { IMAGE_NAMES, RECIPES, isImageName, type ImageName, type ImageRecipe } from './recipes.ts';

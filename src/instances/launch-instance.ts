import { launchContainer } from './launch-container.ts';

export { checkLaunchOnHost } from './launch-container.ts';
import { type ImageResolver, launch, type LaunchOptions, type LaunchResult } from './launch.ts';
import { type LaunchRequest, validateLaunch } from './launch-validate.ts';
import type { InstanceService } from './service.ts';

/** Launches a VM or a system container from an image, as the request's type says (the one place that looks). */
export function launchInstance(service: InstanceService, resolveImage: ImageResolver, request: LaunchRequest, options: LaunchOptions = {}): Promise<LaunchResult> {
  const valid = validateLaunch(request);
  return valid.type === 'container' ? launchContainer(service, resolveImage, valid, options) : launch(service, resolveImage, request, options);
}

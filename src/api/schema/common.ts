import { z } from 'zod';
import { isDuration } from '../duration.js';

export const API_VERSION = 'trellis.dev/v1alpha1';

/** DNS-label-like names, as Kubernetes and Kuma use for resources and services. */
export const Name = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be lowercase letters, digits and "-", starting and ending alphanumeric');

export const Duration = z.string().refine(isDuration, { message: 'must be a duration such as 250ms, 2s, 1m, 24h' });

export const Percent = z.number().min(0).max(100);

export const LabelMap = z.record(
  z.string().regex(/^[A-Za-z0-9_.\/-]{1,63}$/, 'label keys are letters, digits, "_", "-", ".", "/"'),
  z.string().max(63),
);

export const Metadata = z.object({
  name: Name,
  labels: LabelMap.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
}).strict();

export const TargetRef = z.object({ name: Name }).strict();

export const Protocol = z.enum(['http', 'http2', 'grpc', 'tcp']);
export type Protocol = z.infer<typeof Protocol>;

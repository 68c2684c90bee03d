// The few WebGPU declarations this backend uses, written out so that the library compiles (and its users'
// TypeScript compiles) without @webgpu/types or the DOM's WebGPU declarations. Structural: a real GPUDevice,
// from a browser's navigator.gpu or from the `webgpu` package (Dawn) in Node, satisfies them.

export interface GpuLimits {
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxComputeWorkgroupSizeX: number;
  readonly maxComputeWorkgroupStorageSize: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly maxStorageBuffersPerShaderStage: number;
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly minUniformBufferOffsetAlignment: number;
  readonly minStorageBufferOffsetAlignment: number;
}

export interface GpuAdapterInfo {
  readonly vendor?: string;
  readonly architecture?: string;
  readonly device?: string;
  readonly description?: string;
  readonly isFallbackAdapter?: boolean;
}

export interface GpuBuffer {
  readonly size: number;
  mapAsync(mode: number, offset?: number, size?: number): Promise<void>;
  getMappedRange(offset?: number, size?: number): ArrayBuffer;
  unmap(): void;
  destroy(): void;
}

export interface GpuBindGroupLayout { readonly __brand?: 'GPUBindGroupLayout' }
export interface GpuBindGroup { readonly __brand?: 'GPUBindGroup' }
export interface GpuShaderModule {
  getCompilationInfo?(): Promise<{ messages: readonly { type: string; message: string; lineNum: number; linePos: number }[] }>;
}
export interface GpuComputePipeline { getBindGroupLayout(index: number): GpuBindGroupLayout }
export interface GpuCommandBuffer { readonly __brand?: 'GPUCommandBuffer' }

export interface GpuComputePassEncoder {
  setPipeline(p: GpuComputePipeline): void;
  setBindGroup(index: number, g: GpuBindGroup): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
  end(): void;
}

export interface GpuCommandEncoder {
  beginComputePass(desc?: object): GpuComputePassEncoder;
  copyBufferToBuffer(src: GpuBuffer, srcOffset: number, dst: GpuBuffer, dstOffset: number, size: number): void;
  clearBuffer(b: GpuBuffer, offset?: number, size?: number): void;
  finish(): GpuCommandBuffer;
}

export interface GpuQueue {
  submit(buffers: GpuCommandBuffer[]): void;
  writeBuffer(b: GpuBuffer, offset: number, data: ArrayBufferView | ArrayBuffer, dataOffset?: number, size?: number): void;
  onSubmittedWorkDone(): Promise<void>;
}

export interface GpuBufferBinding { buffer: GpuBuffer; offset?: number; size?: number }

export interface GpuDevice {
  readonly limits: GpuLimits;
  readonly features: { has(name: string): boolean };
  readonly queue: GpuQueue;
  readonly lost: Promise<{ reason: string; message: string }>;
  createBuffer(desc: { size: number; usage: number; mappedAtCreation?: boolean }): GpuBuffer;
  createShaderModule(desc: { code: string; label?: string }): GpuShaderModule;
  createComputePipeline(desc: { layout: 'auto'; compute: { module: GpuShaderModule; entryPoint: string }; label?: string }): GpuComputePipeline;
  createBindGroup(desc: { layout: GpuBindGroupLayout; entries: { binding: number; resource: GpuBufferBinding }[] }): GpuBindGroup;
  createCommandEncoder(): GpuCommandEncoder;
  pushErrorScope(filter: 'validation' | 'out-of-memory' | 'internal'): void;
  popErrorScope(): Promise<{ message: string } | null>;
  addEventListener?(type: 'uncapturederror', fn: (e: { error: { message: string } }) => void): void;
  destroy(): void;
}

export interface GpuAdapter {
  readonly limits: GpuLimits;
  readonly features: { has(name: string): boolean };
  readonly info?: GpuAdapterInfo;
  readonly isFallbackAdapter?: boolean;
  requestDevice(desc?: { requiredLimits?: Record<string, number>; requiredFeatures?: string[] }): Promise<GpuDevice>;
}

export interface Gpu {
  requestAdapter(opts?: { powerPreference?: 'low-power' | 'high-performance'; forceFallbackAdapter?: boolean }): Promise<GpuAdapter | null>;
}

/** GPUBufferUsage and GPUMapMode flags (the spec's numbers; no globals needed). */
export const Usage = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
export const MAP_READ = 0x1;

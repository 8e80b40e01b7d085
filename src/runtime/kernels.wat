;; The fused engine's state updates (runtime/fused.ts) as WebAssembly SIMD: four neurons per
;; instruction, one pass over the membrane. Assembled by `npm run wasm` (tools/wasm.mjs) into
;; src/runtime/kernels.wasm.ts; test/fused.test.ts checks that the two agree.
;;
;; All pointers are byte offsets into the exported memory; every array holds `len` values.
;; The float arithmetic is IEEE single precision, as ONNX Runtime's Add, GreaterOrEqual and Sub.
(module
  (memory (export "memory") 1)

  ;; Integrate and fire over n samples of len neurons (u, cur, out: n × len; level, theta, fan:
  ;; len, the same for every sample): u1 = u + cur; fired = u1 >= level; out = fired ? theta : 0;
  ;; u = u1 - out. Returns the number of neurons that fired. With fan != 0, the global $sops
  ;; receives the sum of fan[i] (i32) over the neurons that fired.
  (global $sops (export "sops") (mut i64) (i64.const 0))
  (global $one (mut i32) (i32.const 0))
  (func (export "neuron") (param $u i32) (param $cur i32) (param $out i32) (param $level i32) (param $theta i32) (param $fan i32) (param $len i32) (param $n i32) (result i32)
    (local $i i32) (local $fired i32) (local $sops i64) (local $bytes i32)
    (local.set $bytes (i32.shl (local.get $len) (i32.const 2)))
    (block $done
      (loop $sample
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $fired (i32.add (local.get $fired)
          (call $neuron1 (local.get $u) (local.get $cur) (local.get $out) (local.get $level) (local.get $theta) (local.get $fan) (local.get $len))))
        (local.set $sops (i64.add (local.get $sops) (i64.extend_i32_u (global.get $one))))
        (local.set $u (i32.add (local.get $u) (local.get $bytes)))
        (local.set $cur (i32.add (local.get $cur) (local.get $bytes)))
        (local.set $out (i32.add (local.get $out) (local.get $bytes)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $sample)))
    (global.set $sops (local.get $sops))
    (local.get $fired))

  (func $neuron1 (param $u i32) (param $cur i32) (param $out i32) (param $level i32) (param $theta i32) (param $fan i32) (param $len i32) (result i32)
    (local $i i32) (local $end4 i32) (local $u1 v128) (local $m v128) (local $s v128)
    (local $cnt v128) (local $sop v128) (local $f f32) (local $fired i32) (local $sc i32)
    (local.set $end4 (i32.and (local.get $len) (i32.const -4)))
    (local.set $i (i32.const 0))
    (block $done4
      (loop $vec
        (br_if $done4 (i32.ge_u (local.get $i) (local.get $end4)))
        (local.set $u1 (f32x4.add (v128.load (local.get $u)) (v128.load (local.get $cur))))
        (local.set $m (f32x4.ge (local.get $u1) (v128.load (local.get $level))))
        (local.set $s (v128.and (local.get $m) (v128.load (local.get $theta))))
        (v128.store (local.get $out) (local.get $s))
        (v128.store (local.get $u) (f32x4.sub (local.get $u1) (local.get $s)))
        ;; the mask is -1 where fired: subtracting it counts
        (local.set $cnt (i32x4.sub (local.get $cnt) (local.get $m)))
        (if (local.get $fan)
          (then
            (local.set $sop (i32x4.add (local.get $sop) (v128.and (local.get $m) (v128.load (local.get $fan)))))
            (local.set $fan (i32.add (local.get $fan) (i32.const 16)))))
        (local.set $u (i32.add (local.get $u) (i32.const 16)))
        (local.set $cur (i32.add (local.get $cur) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (local.set $level (i32.add (local.get $level) (i32.const 16)))
        (local.set $theta (i32.add (local.get $theta) (i32.const 16)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vec)))
    (local.set $fired (i32.add (i32.add (i32x4.extract_lane 0 (local.get $cnt)) (i32x4.extract_lane 1 (local.get $cnt)))
                               (i32.add (i32x4.extract_lane 2 (local.get $cnt)) (i32x4.extract_lane 3 (local.get $cnt)))))
    (local.set $sc (i32.add (i32.add (i32x4.extract_lane 0 (local.get $sop)) (i32x4.extract_lane 1 (local.get $sop)))
                            (i32.add (i32x4.extract_lane 2 (local.get $sop)) (i32x4.extract_lane 3 (local.get $sop)))))
    ;; the last len mod 4 neurons one by one
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $f (f32.add (f32.load (local.get $u)) (f32.load (local.get $cur))))
        (if (f32.ge (local.get $f) (f32.load (local.get $level)))
          (then
            (f32.store (local.get $out) (f32.load (local.get $theta)))
            (f32.store (local.get $u) (f32.sub (local.get $f) (f32.load (local.get $theta))))
            (local.set $fired (i32.add (local.get $fired) (i32.const 1)))
            (if (local.get $fan) (then (local.set $sc (i32.add (local.get $sc) (i32.load (local.get $fan)))))))
          (else
            (f32.store (local.get $out) (f32.const 0))
            (f32.store (local.get $u) (local.get $f))))
        (if (local.get $fan) (then (local.set $fan (i32.add (local.get $fan) (i32.const 4)))))
        (local.set $u (i32.add (local.get $u) (i32.const 4)))
        (local.set $cur (i32.add (local.get $cur) (i32.const 4)))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (local.set $level (i32.add (local.get $level) (i32.const 4)))
        (local.set $theta (i32.add (local.get $theta) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $one)))
    (global.set $one (local.get $sc))
    (local.get $fired))

;; The same update with the firing level and theta constant per channel (the usual case):
  ;; u, cur, out hold n samples of c channels of len neurons; level and theta hold c values; fan
  ;; (if not 0) holds c × len values. Saves reading two per-neuron arrays per pass.
  (func (export "neuronChannels") (param $u i32) (param $cur i32) (param $out i32) (param $level i32) (param $theta i32) (param $fan i32) (param $len i32) (param $c i32) (param $n i32) (result i32)
    (local $i i32) (local $k i32) (local $fired i32) (local $sops i64) (local $bytes i32) (local $f i32)
    (local.set $bytes (i32.shl (local.get $len) (i32.const 2)))
    (block $done
      (loop $sample
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $k (i32.const 0))
        (local.set $f (local.get $fan))
        (block $chdone
          (loop $channel
            (br_if $chdone (i32.ge_u (local.get $k) (local.get $c)))
            (local.set $fired (i32.add (local.get $fired)
              (call $run (local.get $u) (local.get $cur) (local.get $out)
                (f32.load (i32.add (local.get $level) (i32.shl (local.get $k) (i32.const 2))))
                (f32.load (i32.add (local.get $theta) (i32.shl (local.get $k) (i32.const 2))))
                (local.get $f) (local.get $len))))
            (local.set $sops (i64.add (local.get $sops) (i64.extend_i32_u (global.get $one))))
            (local.set $u (i32.add (local.get $u) (local.get $bytes)))
            (local.set $cur (i32.add (local.get $cur) (local.get $bytes)))
            (local.set $out (i32.add (local.get $out) (local.get $bytes)))
            (if (local.get $fan) (then (local.set $f (i32.add (local.get $f) (local.get $bytes)))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $channel)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $sample)))
    (global.set $sops (local.get $sops))
    (local.get $fired))

  ;; len neurons sharing one firing level and theta; returns the spikes, $one gets the SOPs.
  (func $run (param $u i32) (param $cur i32) (param $out i32) (param $lv f32) (param $th f32) (param $fan i32) (param $len i32) (result i32)
    (local $i i32) (local $end4 i32) (local $u1 v128) (local $m v128) (local $s v128) (local $lvv v128) (local $thv v128)
    (local $cnt v128) (local $sop v128) (local $f f32) (local $fired i32) (local $sc i32)
    (local.set $lvv (f32x4.splat (local.get $lv)))
    (local.set $thv (f32x4.splat (local.get $th)))
    (local.set $end4 (i32.and (local.get $len) (i32.const -4)))
    (block $done4
      (loop $vec
        (br_if $done4 (i32.ge_u (local.get $i) (local.get $end4)))
        (local.set $u1 (f32x4.add (v128.load (local.get $u)) (v128.load (local.get $cur))))
        (local.set $m (f32x4.ge (local.get $u1) (local.get $lvv)))
        (local.set $s (v128.and (local.get $m) (local.get $thv)))
        (v128.store (local.get $out) (local.get $s))
        (v128.store (local.get $u) (f32x4.sub (local.get $u1) (local.get $s)))
        (local.set $cnt (i32x4.sub (local.get $cnt) (local.get $m)))
        (if (local.get $fan)
          (then
            (local.set $sop (i32x4.add (local.get $sop) (v128.and (local.get $m) (v128.load (local.get $fan)))))
            (local.set $fan (i32.add (local.get $fan) (i32.const 16)))))
        (local.set $u (i32.add (local.get $u) (i32.const 16)))
        (local.set $cur (i32.add (local.get $cur) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vec)))
    (local.set $fired (i32.add (i32.add (i32x4.extract_lane 0 (local.get $cnt)) (i32x4.extract_lane 1 (local.get $cnt)))
                               (i32.add (i32x4.extract_lane 2 (local.get $cnt)) (i32x4.extract_lane 3 (local.get $cnt)))))
    (local.set $sc (i32.add (i32.add (i32x4.extract_lane 0 (local.get $sop)) (i32x4.extract_lane 1 (local.get $sop)))
                            (i32.add (i32x4.extract_lane 2 (local.get $sop)) (i32x4.extract_lane 3 (local.get $sop)))))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $f (f32.add (f32.load (local.get $u)) (f32.load (local.get $cur))))
        (if (f32.ge (local.get $f) (local.get $lv))
          (then
            (f32.store (local.get $out) (local.get $th))
            (f32.store (local.get $u) (f32.sub (local.get $f) (local.get $th)))
            (local.set $fired (i32.add (local.get $fired) (i32.const 1)))
            (if (local.get $fan) (then (local.set $sc (i32.add (local.get $sc) (i32.load (local.get $fan)))))))
          (else
            (f32.store (local.get $out) (f32.const 0))
            (f32.store (local.get $u) (local.get $f))))
        (if (local.get $fan) (then (local.set $fan (i32.add (local.get $fan) (i32.const 4)))))
        (local.set $u (i32.add (local.get $u) (i32.const 4)))
        (local.set $cur (i32.add (local.get $cur) (i32.const 4)))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $one)))
    (global.set $one (local.get $sc))
    (local.get $fired))

  ;; Sum of fan[i] (i32) over the i where x[i] != 0 (events feeding a layer), over n samples of len.
  (func (export "events") (param $x i32) (param $fan i32) (param $len i32) (param $n i32) (result i64)
    (local $i i32) (local $sum i64) (local $bytes i32)
    (local.set $bytes (i32.shl (local.get $len) (i32.const 2)))
    (block $done
      (loop $sample
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $events1 (local.get $x) (local.get $fan) (local.get $len)))))
        (local.set $x (i32.add (local.get $x) (local.get $bytes)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $sample)))
    (local.get $sum))

  (func $events1 (param $x i32) (param $fan i32) (param $len i32) (result i32)
    (local $i i32) (local $end4 i32) (local $acc v128) (local $sc i32)
    (local.set $end4 (i32.and (local.get $len) (i32.const -4)))
    (block $done4
      (loop $vec
        (br_if $done4 (i32.ge_u (local.get $i) (local.get $end4)))
        (local.set $acc (i32x4.add (local.get $acc)
          (v128.and (f32x4.ne (v128.load (local.get $x)) (v128.const f32x4 0 0 0 0)) (v128.load (local.get $fan)))))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $fan (i32.add (local.get $fan) (i32.const 16)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vec)))
    (local.set $sc (i32.add (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
                            (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (if (f32.ne (f32.load (local.get $x)) (f32.const 0))
          (then (local.set $sc (i32.add (local.get $sc) (i32.load (local.get $fan))))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $fan (i32.add (local.get $fan) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $one)))
    (local.get $sc))

  ;; out = state + x; state = out (a running sum over steps).
  (func (export "accumulate") (param $state i32) (param $x i32) (param $out i32) (param $len i32)
    (local $i i32) (local $end4 i32) (local $v v128) (local $f f32)
    (local.set $end4 (i32.and (local.get $len) (i32.const -4)))
    (block $done4
      (loop $vec
        (br_if $done4 (i32.ge_u (local.get $i) (local.get $end4)))
        (local.set $v (f32x4.add (v128.load (local.get $state)) (v128.load (local.get $x))))
        (v128.store (local.get $out) (local.get $v))
        (v128.store (local.get $state) (local.get $v))
        (local.set $state (i32.add (local.get $state) (i32.const 16)))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vec)))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $f (f32.add (f32.load (local.get $state)) (f32.load (local.get $x))))
        (f32.store (local.get $out) (local.get $f))
        (f32.store (local.get $state) (local.get $f))
        (local.set $state (i32.add (local.get $state) (i32.const 4)))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $one))))

  ;; out = x - state; state = x (the change since the previous step).
  (func (export "difference") (param $state i32) (param $x i32) (param $out i32) (param $len i32)
    (local $i i32) (local $end4 i32) (local $v v128) (local $f f32)
    (local.set $end4 (i32.and (local.get $len) (i32.const -4)))
    (block $done4
      (loop $vec
        (br_if $done4 (i32.ge_u (local.get $i) (local.get $end4)))
        (local.set $v (v128.load (local.get $x)))
        (v128.store (local.get $out) (f32x4.sub (local.get $v) (v128.load (local.get $state))))
        (v128.store (local.get $state) (local.get $v))
        (local.set $state (i32.add (local.get $state) (i32.const 16)))
        (local.set $x (i32.add (local.get $x) (i32.const 16)))
        (local.set $out (i32.add (local.get $out) (i32.const 16)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $vec)))
    (block $done
      (loop $one
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $f (f32.load (local.get $x)))
        (f32.store (local.get $out) (f32.sub (local.get $f) (f32.load (local.get $state))))
        (f32.store (local.get $state) (local.get $f))
        (local.set $state (i32.add (local.get $state) (i32.const 4)))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $out (i32.add (local.get $out) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $one))))
)

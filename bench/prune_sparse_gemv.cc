// A 50%-sparse matrix-vector product against the dense one, one thread: is a sparse kernel worth
// having for pruned models on this CPU? Dense f32 (AVX-512 FMA) vs CSR (f32 values + u16 column
// per nonzero, AVX-512 gathers of x) vs 2:4 (two f32 values + a u8 position per group of four),
// the same 2:4-pruned matrix in each, results checked against the dense product.
// Not a CMake target (it needs -march with AVX-512): bench/prune_bench.sh compiles and runs it
//   g++ -O3 -march=native bench/prune_sparse_gemv.cc -o sparse_gemv && ./sparse_gemv ROWS COLS REPS
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <vector>
#include <random>
#include <algorithm>
#include <cmath>
using namespace std;
static double now(){return chrono::duration<double>(chrono::steady_clock::now().time_since_epoch()).count();}
int main(int argc,char**argv){
  if(argc!=4){fprintf(stderr,"usage: %s ROWS COLS REPS (COLS a multiple of 32)\n",argv[0]);return 2;}
  const int R=atoi(argv[1]), C=atoi(argv[2]); const int reps=atoi(argv[3]);
  if(R<1||C<32||C%32!=0||reps<1){fprintf(stderr,"bad sizes\n");return 2;}
  mt19937 rng(1); normal_distribution<float> nd;
  vector<float> W((size_t)R*C), x(C); for(auto&v:W)v=nd(rng); for(auto&v:x)v=nd(rng);
  // 2:4 magnitude
  vector<float> v24((size_t)R*C/2); vector<uint8_t> i24((size_t)R*C/2);
  vector<float> Wp=W;
  for(int r=0;r<R;r++)for(int g=0;g<C;g+=4){int id[4]={0,1,2,3}; float*p=&W[(size_t)r*C+g];
    sort(id,id+4,[&](int a,int b){return fabs(p[a])>fabs(p[b]);}); int k0=min(id[0],id[1]),k1=max(id[0],id[1]);
    size_t o=((size_t)r*C+g)/2; v24[o]=p[k0];v24[o+1]=p[k1];i24[o]=k0;i24[o+1]=k1;
    for(int i=0;i<4;i++) if(i!=k0&&i!=k1) Wp[(size_t)r*C+g+i]=0;}
  // CSR from the same pattern (u16 columns)
  vector<float> cv((size_t)R*C/2); vector<uint16_t> ci((size_t)R*C/2);
  for(int r=0;r<R;r++){size_t o=(size_t)r*C/2; for(int c=0;c<C;c++) if(Wp[(size_t)r*C+c]!=0){cv[o]=Wp[(size_t)r*C+c];ci[o]=c;o++;}}
  vector<float> y(R),y2(R),y3(R);
  auto dense=[&](const vector<float>&M,vector<float>&out){for(int r=0;r<R;r++){const float*p=&M[(size_t)r*C];__m512 a=_mm512_setzero_ps(),b=_mm512_setzero_ps();
    for(int c=0;c<C;c+=32){a=_mm512_fmadd_ps(_mm512_loadu_ps(p+c),_mm512_loadu_ps(&x[c]),a);b=_mm512_fmadd_ps(_mm512_loadu_ps(p+c+16),_mm512_loadu_ps(&x[c+16]),b);}
    out[r]=_mm512_reduce_add_ps(_mm512_add_ps(a,b));}};
  auto csr=[&](){const int nz=C/2;for(int r=0;r<R;r++){const float*p=&cv[(size_t)r*nz];const uint16_t*ix=&ci[(size_t)r*nz];__m512 a=_mm512_setzero_ps();
    for(int k=0;k<nz;k+=16){__m512i id=_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(ix+k)));
      a=_mm512_fmadd_ps(_mm512_loadu_ps(p+k),_mm512_i32gather_ps(id,x.data(),4),a);} y2[r]=_mm512_reduce_add_ps(a);}};
  const __m512i base=_mm512_setr_epi32(0,0,4,4,8,8,12,12,16,16,20,20,24,24,28,28);
  auto s24=[&](){const int nz=C/2;for(int r=0;r<R;r++){const float*p=&v24[(size_t)r*nz];const uint8_t*ix=&i24[(size_t)r*nz];__m512 a=_mm512_setzero_ps();
    for(int k=0;k<nz;k+=16){__m512i id=_mm512_add_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(ix+k))),base);
      a=_mm512_fmadd_ps(_mm512_loadu_ps(p+k),_mm512_i32gather_ps(id,x.data()+2*k,4),a);} y3[r]=_mm512_reduce_add_ps(a);}};
  auto bench=[&](const char*n,auto f,double bytes){f();double t0=now();for(int i=0;i<reps;i++)f();double t=(now()-t0)/reps;
    printf("%-22s %8.3f ms  %6.2f GB/s of its own bytes  (%.1f MB)\n",n,t*1e3,bytes/t/1e9,bytes/1e6);};
  bench("dense f32",[&]{dense(W,y);},4.0*R*C);
  bench("CSR 50% f32+u16",csr,6.0*R*C/2);
  bench("2:4 f32+u8 idx",s24,5.0*R*C/2);
  dense(Wp,y); csr(); s24(); double e2=0,e3=0; for(int r=0;r<R;r++){e2=max(e2,(double)fabs(y[r]-y2[r]));e3=max(e3,(double)fabs(y[r]-y3[r]));}
  printf("max |diff| vs dense on the pruned matrix: csr %.2e  2:4 %.2e\n",e2,e3);
}

/* A GL ES program for tests/gles: `abuse good` clears a pbuffer, draws a triangle from a
 * client-side array and prints the pixels it reads back (the same program runs on Mesa
 * directly and through vgpu, and both must print the same); `abuse bad` does what buggy
 * programs do (frees twice, draws with deleted objects, passes wild sizes) and then dies
 * in the middle of a frame. */
#include <EGL/egl.h>
#include <GLES2/gl2.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *vs = "attribute vec2 p; void main() { gl_Position = vec4(p, 0.0, 1.0); }";
static const char *fs = "precision mediump float; uniform vec4 c;"
                        " void main() { gl_FragColor = c; }";

static GLuint program(void)
{
    GLuint v = glCreateShader(GL_VERTEX_SHADER), f = glCreateShader(GL_FRAGMENT_SHADER);
    glShaderSource(v, 1, &vs, NULL);
    glShaderSource(f, 1, &fs, NULL);
    glCompileShader(v);
    glCompileShader(f);
    GLuint p = glCreateProgram();
    glAttachShader(p, v);
    glAttachShader(p, f);
    glBindAttribLocation(p, 0, "p");
    glLinkProgram(p);
    GLint ok = 0;
    glGetProgramiv(p, GL_LINK_STATUS, &ok);
    if (!ok) printf("link failed\n");
    return p;
}

int main(int argc, char **argv)
{
    int bad = argc > 1 && !strcmp(argv[1], "bad");
    EGLDisplay d = eglGetDisplay(EGL_DEFAULT_DISPLAY);
    EGLint cfg_attr[] = {EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RENDERABLE_TYPE,
                         EGL_OPENGL_ES2_BIT, EGL_RED_SIZE, 8, EGL_NONE};
    EGLint pb_attr[] = {EGL_WIDTH, 64, EGL_HEIGHT, 64, EGL_NONE};
    EGLint ctx_attr[] = {EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE};
    EGLConfig cfg;
    EGLint n = 0;
    if (!eglInitialize(d, NULL, NULL) || !eglChooseConfig(d, cfg_attr, &cfg, 1, &n) || !n) {
        printf("no EGL\n");
        return 1;
    }
    eglBindAPI(EGL_OPENGL_ES_API);
    EGLSurface s = eglCreatePbufferSurface(d, cfg, pb_attr);
    EGLContext c = eglCreateContext(d, cfg, EGL_NO_CONTEXT, ctx_attr);
    if (!eglMakeCurrent(d, s, s, c)) {
        printf("no context\n");
        return 1;
    }
    GLuint p = program();
    static const GLfloat tri[] = {-1, -1, 1, -1, -1, 1};
    if (bad) {
        GLuint b;
        glGenBuffers(1, &b);
        glDeleteBuffers(1, &b);
        glDeleteBuffers(1, &b);
        glDeleteProgram(p);
        glDeleteProgram(p);
        glUseProgram(p);
        glBindBuffer(GL_ARRAY_BUFFER, b);
        glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, 0);
        glEnableVertexAttribArray(0);
        glDrawArrays(GL_TRIANGLES, 0, 1 << 30);
        glBufferData(GL_ARRAY_BUFFER, (GLsizeiptr)1 << 40, NULL, GL_STATIC_DRAW);
        glBufferData(GL_ARRAY_BUFFER, -1, NULL, GL_STATIC_DRAW);
        glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, 1 << 20, 1 << 20, 0, GL_RGBA,
                     GL_UNSIGNED_BYTE, NULL);
        glUniform4fv(0, -5, NULL);
        GLubyte px[4];
        glReadPixels(0, 0, 1 << 20, 1 << 20, GL_RGBA, GL_UNSIGNED_BYTE, NULL);
        glReadPixels(0, 0, 1, 1, GL_RGBA, GL_UNSIGNED_BYTE, px);
        glBindBuffer(GL_ELEMENT_ARRAY_BUFFER, b);
        glDrawElements(GL_TRIANGLES, 3, GL_UNSIGNED_SHORT, (const void *)0x10);
        printf("error 0x%x\n", glGetError());
        glClear(GL_COLOR_BUFFER_BIT);
        glFlush();
        fflush(stdout);
        kill(getpid(), SIGKILL); /* dies in the middle of a frame */
    }
    glViewport(0, 0, 64, 64);
    glClearColor(0.0f, 0.0f, 1.0f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    glUseProgram(p);
    glUniform4f(glGetUniformLocation(p, "c"), 1.0f, 0.5f, 0.0f, 1.0f);
    glBindBuffer(GL_ARRAY_BUFFER, 0);
    glVertexAttribPointer(0, 2, GL_FLOAT, GL_FALSE, 0, tri);
    glEnableVertexAttribArray(0);
    glDrawArrays(GL_TRIANGLES, 0, 3);
    GLubyte px[2][4];
    glReadPixels(4, 4, 1, 1, GL_RGBA, GL_UNSIGNED_BYTE, px[0]);
    glReadPixels(60, 60, 1, 1, GL_RGBA, GL_UNSIGNED_BYTE, px[1]);
    printf("%d %d %d %d / %d %d %d %d / error 0x%x\n", px[0][0], px[0][1], px[0][2],
           px[0][3], px[1][0], px[1][1], px[1][2], px[1][3], glGetError());
    eglTerminate(d);
    return 0;
}
